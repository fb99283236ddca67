# `rae cache` end to end under real mpirun (3 ranks, oversubscribed), plus a singleton run.
find_program(RAE_H5DUMP h5dump)
find_program(RAE_H5DIFF h5diff)
if(RAE_H5DUMP AND RAE_H5DIFF)
  add_test(NAME cachejob_mpirun_np3
           COMMAND ${CMAKE_COMMAND} -DRAE=$<TARGET_FILE:rae>
                   "-DMPIRUN=${MPIEXEC_EXECUTABLE} --oversubscribe --bind-to none"
                   -DH5DUMP=${RAE_H5DUMP} -DH5DIFF=${RAE_H5DIFF}
                   -DWORK=${CMAKE_BINARY_DIR}/test-tmp/cachejob
                   -P ${CMAKE_CURRENT_LIST_DIR}/cache_job_test.cmake)
  set_tests_properties(cachejob_mpirun_np3 PROPERTIES
                       ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_btl=self,vader;OMPI_MCA_rmaps_base_oversubscribe=1;OMPI_MCA_btl_vader_single_copy_mechanism=none"
                       TIMEOUT 300 PROCESSORS 2 LABELS "mpi;cachejob")
else()
  message(STATUS "rae: h5dump/h5diff not found; cachejob_mpirun_np3 test disabled")
endif()

# A worker stopped mid-job: the watchdog (not a hang) ends `rae cache`.
add_test(NAME cachejob_stalled_worker
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/stalled_worker.sh $<TARGET_FILE:rae>
                 ${CMAKE_BINARY_DIR}/test-tmp/cachejob_stalled)
set_tests_properties(cachejob_stalled_worker PROPERTIES
                     ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_btl=self,vader;OMPI_MCA_rmaps_base_oversubscribe=1;OMPI_MCA_btl_vader_single_copy_mechanism=none"
                     TIMEOUT 120 PROCESSORS 2 LABELS "mpi;cachejob")
