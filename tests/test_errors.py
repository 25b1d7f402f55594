"""User errors survive a trip through pickle (a worker process's error reaches the CLI as itself)."""

import pickle

import pytest

from hybridjet.errors import HybridjetError, InputFileError, OutputPathError


@pytest.mark.parametrize("error", [InputFileError("data/jets.h5", "missing"), OutputPathError("/runs", "is a file"),
                                   HybridjetError("--jobs: expected an integer >= 1, got 0")])
def test_errors_unpickle_as_themselves(error):
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error) and str(again) == str(error)
    if isinstance(error, InputFileError | OutputPathError):
        assert (again.path, again.problem) == (error.path, error.problem)
    assert isinstance(again, OSError) == isinstance(error, OSError)


def test_notes_travel_with_the_error():
    error = InputFileError("data/jets.h5", "missing")
    error.add_note("while reading fold 3")
    assert pickle.loads(pickle.dumps(error)).__notes__ == ["while reading fold 3"]
