#!/usr/bin/env bash
# Where the time of `hybridjet score` goes on the GPU machine, for a 1.1M-event file (phases, cProfile, imports).
# Needs a run and the big file from score_lhco.py in /root/score_lhco; writes $OUT/cli_profile.{txt,prof}, cli_imports.txt.
source scripts/device/setup_device.sh
M=${M:-/root/models/smollm2-random}; W=/root/score_lhco
python3 -X importtime -c "import hybridjet.models.hybrid" 2> $OUT/cli_imports.txt
sort -t'|' -k2 -n $OUT/cli_imports.txt | tail -12 | cut -c1-160
( time python3 -m cProfile -o $OUT/cli_profile.prof -m hybridjet.cli score $W/run $W/lhco_jets.h5 --out /root/p.h5 --dense --batch-size 65536 --model $M ) 2>&1 | grep -E "scored|real|user"
python3 -c "
import pstats, sys
s = pstats.Stats(sys.argv[1], stream=open(sys.argv[2], 'w')); s.sort_stats('cumtime').print_stats(80)
s = pstats.Stats(sys.argv[1]); s.sort_stats('tottime').print_stats(25)" $OUT/cli_profile.prof $OUT/cli_profile.txt | grep -v "^$" | head -45 | cut -c1-200
