// CLIP module: see README "Architecture". Filled in by its issue.
import Tensor
import Kernels
