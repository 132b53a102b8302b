// glibc's allocator tuning (mallopt), for Passes/Training/AllocatorPolicy.swift.
#include <malloc.h>
