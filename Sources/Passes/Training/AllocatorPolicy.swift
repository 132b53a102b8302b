#if canImport(Glibc)
import CMalloc
#endif

// The allocator under training: a step frees and allocates the same large buffers every batch (gradients, Conv
// columns, the values of the tape). glibc's default gives a block over its mmap threshold (dynamic, at most 32 MB)
// back to the kernel when freed, and trims the heap's top, so the next step faults every page in again (zero-filled
// by the kernel: system time). Keeping freed memory in the heap turns that into reuse:
//
//   ResNet-18 64×64 b32, 5 steps, whole process (farm-bench A/B, median of 3; these settings given as
//   GLIBC_TUNABLES to the same binary): 44.4 s wall / 3.1 s system → 39.7 s / 0.9 s; peak RSS 802 → 851 MiB
//
// Peak memory is what the process held at its fullest either way; only memory freed after the peak stays resident.

public enum AllocatorPolicy {
    /// Tells glibc's malloc to serve large blocks from its heap and never to trim it: freed memory is reused by the
    /// process instead of going back to the kernel. Process-wide; `retrainFile` sets it. No effect off glibc.
    public static func retainFreedMemory() {
        #if canImport(Glibc)
        _ = mallopt(M_MMAP_THRESHOLD, 1 << 30)
        _ = mallopt(M_TRIM_THRESHOLD, Int32.max)
        #endif
    }
}
