# The quality jobs of the 2-GPU run (sourced by run_quality_x2.sh): GPU 0 the fourvec comparison, GPU 1 the text
# baseline then the substructure pair. Hybrid: periodic numeric embedding (the default), batch 1024, the prefix run
# per event (faster to train at this batch on a GPU, see BENCHMARKS.md), 12 epochs (10 with substructure inputs).
GPU0_JOBS="--models gbdt ablation hybrid --batch-size '{\"hybrid\":1024,\"ablation\":512}' --epochs '{\"hybrid\":12,\"ablation\":30}' --no-cache-prefix"
GPU1_JOBS="--models text --text-train-events 30000; --feature-set substructure --suffix=-sub --models gbdt hybrid --batch-size '{\"hybrid\":1024}' --epochs '{\"hybrid\":10}' --no-cache-prefix"
