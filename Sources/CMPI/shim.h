// Accessors for OpenMPI's handles and constants. They are macros over globals of incomplete type,
// which Swift cannot import; these static inline functions can be.
#ifndef RADA_CMPI_SHIM_H
#define RADA_CMPI_SHIM_H
#include <mpi.h>

static inline MPI_Comm rada_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Comm rada_mpi_comm_null(void) { return MPI_COMM_NULL; }
static inline MPI_Datatype rada_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype rada_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype rada_mpi_int(void) { return MPI_INT; }
static inline MPI_Datatype rada_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Datatype rada_mpi_long_long(void) { return MPI_LONG_LONG; }
static inline MPI_Datatype rada_mpi_char(void) { return MPI_CHAR; }
static inline MPI_Op rada_mpi_sum(void) { return MPI_SUM; }
static inline MPI_Op rada_mpi_max(void) { return MPI_MAX; }
static inline MPI_Op rada_mpi_min(void) { return MPI_MIN; }
static inline void *rada_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Request rada_mpi_request_null(void) { return MPI_REQUEST_NULL; }
static inline MPI_Errhandler rada_mpi_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline MPI_Info rada_mpi_info_null(void) { return MPI_INFO_NULL; }
static inline int rada_mpi_success(void) { return MPI_SUCCESS; }
static inline int rada_mpi_max_error_string(void) { return MPI_MAX_ERROR_STRING; }
static inline int rada_mpi_max_library_version_string(void) { return MPI_MAX_LIBRARY_VERSION_STRING; }
static inline int rada_mpi_max_processor_name(void) { return MPI_MAX_PROCESSOR_NAME; }
static inline int rada_mpi_comm_type_shared(void) { return MPI_COMM_TYPE_SHARED; }
static inline int rada_mpi_undefined(void) { return MPI_UNDEFINED; }

#endif
