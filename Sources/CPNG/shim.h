// libpng's simplified API (Debian libpng-dev): PNG decoding for image data sources.
#include <png.h>
