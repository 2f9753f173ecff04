// Data module: datasets (image folders, CSV manifests, CoOp/Dassl benchmarks with few-shot splits), the
// global-batch sampler and the background batch loader. Data knows nothing of ranks or models: it is given
// positions to load. Entry points: `DatasetSpec.load`, `GlobalBatchSampler`, `BatchLoader`.
// Shape letters (README "Shape letters") used in this module: N dataset size, B batch, K classes.
