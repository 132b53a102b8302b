// libFuzzer's entry for programs that have their own main (compiler-rt, FuzzerInterface.h). SwiftPM links every
// executable with its own `main`, so each target calls this from main.swift instead of using libFuzzer's main.
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
