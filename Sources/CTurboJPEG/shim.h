// libjpeg-turbo's TurboJPEG API (Debian libturbojpeg0-dev): JPEG decoding for image data sources.
#include <turbojpeg.h>
