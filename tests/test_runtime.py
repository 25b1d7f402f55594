from hybridjet.runtime import padded_batch_size


def test_padded_batch_size_is_the_batch_size_or_the_next_power_of_two_below_it():
    assert [padded_batch_size(n, 256) for n in (1, 2, 3, 20, 32, 33, 129, 255, 256, 10_000)] == [
        1, 2, 4, 32, 32, 64, 256, 256, 256, 256]
    assert padded_batch_size(700, 1000) == 1000 and padded_batch_size(5000, 1000) == 1000  # never beyond it
