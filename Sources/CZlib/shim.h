// zlib (Debian zlib1g-dev): raw inflate for .npz calibration data.
#include <zlib.h>
