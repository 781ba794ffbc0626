// KERNELS_HOST_DEVICE marks the inline functions a kernel header shares between its CPU and CUDA twins, so a
// per-element or per-row formula is written once (kernels/sgd.h, cross_entropy.h, batch_norm.h, pool.h,
// image_batch.h).
#pragma once

#if defined(__CUDACC__)
#define KERNELS_HOST_DEVICE __host__ __device__
#else
#define KERNELS_HOST_DEVICE
#endif
