// The protobuf-c runtime (Debian libprotobuf-c-dev), seen from Swift.
#include <protobuf-c/protobuf-c.h>
