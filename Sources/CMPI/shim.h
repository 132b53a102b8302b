// MPI (Debian libopenmpi-dev, through pkg-config's mpi-c) as plain functions: mpi.h spells the world communicator,
// the datatypes, MPI_IN_PLACE and the ops as macros over implementation globals, which Swift cannot import.
//   amct_mpi_init → rank/size → non-blocking collectives on MPI_COMM_WORLD (amct_mpi_test polls them) → finalize
// Every collective is non-blocking so the caller can watch a deadline (Distributed.swift's watchdog).
#include <mpi.h>
#include <stdint.h>

/// A pending non-blocking operation.
typedef struct { MPI_Request request; } amct_mpi_request;

static inline int amct_mpi_init(void) {
    int provided = 0;
    return MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
}
static inline int amct_mpi_initialized(void) { int flag = 0; MPI_Initialized(&flag); return flag; }
static inline int amct_mpi_finalized(void) { int flag = 0; MPI_Finalized(&flag); return flag; }
static inline int amct_mpi_finalize(void) { return MPI_Finalize(); }
static inline int amct_mpi_rank(void) { int r = 0; MPI_Comm_rank(MPI_COMM_WORLD, &r); return r; }
static inline int amct_mpi_size(void) { int n = 1; MPI_Comm_size(MPI_COMM_WORLD, &n); return n; }
static inline void amct_mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

/// Sum of `count` floats over every rank, in place.
static inline int amct_mpi_iallreduce_sum_float(float *buffer, int count, amct_mpi_request *r) {
    return MPI_Iallreduce(MPI_IN_PLACE, buffer, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &r->request);
}
/// Sum of `count` doubles over every rank, in place.
static inline int amct_mpi_iallreduce_sum_double(double *buffer, int count, amct_mpi_request *r) {
    return MPI_Iallreduce(MPI_IN_PLACE, buffer, count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD, &r->request);
}
/// Maximum of `count` unsigned 64-bit integers over every rank, in place.
static inline int amct_mpi_iallreduce_max_u64(uint64_t *buffer, int count, amct_mpi_request *r) {
    return MPI_Iallreduce(MPI_IN_PLACE, buffer, count, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD, &r->request);
}
/// Rank 0's `count` bytes to every rank.
static inline int amct_mpi_ibcast_bytes(void *buffer, int count, amct_mpi_request *r) {
    return MPI_Ibcast(buffer, count, MPI_BYTE, 0, MPI_COMM_WORLD, &r->request);
}
/// A rank's arrival at collective number `*sequence`, sent to rank 0 (which names the ranks that never arrive).
static inline int amct_mpi_isend_arrival(int64_t *sequence, int tag, amct_mpi_request *r) {
    return MPI_Isend(sequence, 1, MPI_INT64_T, 0, tag, MPI_COMM_WORLD, &r->request);
}
static inline int amct_mpi_irecv_arrival(int64_t *sequence, int source, int tag, amct_mpi_request *r) {
    return MPI_Irecv(sequence, 1, MPI_INT64_T, source, tag, MPI_COMM_WORLD, &r->request);
}
/// A heartbeat to rank 0 (`*value` must outlive the send: it is never waited for).
static inline int amct_mpi_send_heartbeat(int64_t *value, int tag) {
    MPI_Request request;
    int rc = MPI_Isend(value, 1, MPI_INT64_T, 0, tag, MPI_COMM_WORLD, &request);
    if (rc == MPI_SUCCESS) MPI_Request_free(&request);
    return rc;
}
/// Rank 0: the next heartbeat from any rank.
static inline int amct_mpi_irecv_heartbeat(int64_t *value, int tag, amct_mpi_request *r) {
    return MPI_Irecv(value, 1, MPI_INT64_T, MPI_ANY_SOURCE, tag, MPI_COMM_WORLD, &r->request);
}
/// 1 when the receive completed (its sender in `*source`), else 0.
static inline int amct_mpi_test_source(amct_mpi_request *r, int *source) {
    int flag = 0;
    MPI_Status status;
    MPI_Test(&r->request, &flag, &status);
    if (flag) *source = status.MPI_SOURCE;
    return flag;
}
/// Cancels a pending receive (before MPI_Finalize).
static inline void amct_mpi_cancel(amct_mpi_request *r) {
    MPI_Cancel(&r->request);
    MPI_Wait(&r->request, MPI_STATUS_IGNORE);
}
/// 1 when the operation completed (the request is then freed), else 0.
static inline int amct_mpi_test(amct_mpi_request *r) {
    int flag = 0;
    MPI_Test(&r->request, &flag, MPI_STATUS_IGNORE);
    return flag;
}
