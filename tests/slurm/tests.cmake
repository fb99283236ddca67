# Slurm operations (label slurm): a real local Slurm from Debian's packages (cluster/local), the
# batch scripts of cluster/slurm, preemption and resume; and signals during checkpoint writes.
set(RAE_SLURM_TEST_ENV
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    OMPI_MCA_btl=self,vader OMPI_MCA_rmaps_base_oversubscribe=1
    OMPI_MCA_btl_vader_single_copy_mechanism=none)
foreach(mode start-stop preempt decoder sample)
  add_test(NAME slurm_${mode}
           COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/slurm_ops.sh $<TARGET_FILE:rae> ${CMAKE_SOURCE_DIR}
                   ${CMAKE_BINARY_DIR}/test_tmp/slurm_${mode} ${RAE_PYTHON_EXE} ${mode})
  set_tests_properties(slurm_${mode} PROPERTIES ENVIRONMENT "${RAE_SLURM_TEST_ENV}"
                       TIMEOUT 600 PROCESSORS 2 SKIP_RETURN_CODE 77 LABELS slurm)
endforeach()

# The signal shim raises SIGUSR1/SIGTERM from inside checkpoint fsyncs (LD_PRELOAD).
add_library(signal_in_save SHARED ${CMAKE_CURRENT_LIST_DIR}/signal_in_save.c)
target_link_libraries(signal_in_save PRIVATE ${CMAKE_DL_LIBS})
add_test(NAME slurm_signal_in_save
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/signal_in_save.sh $<TARGET_FILE:rae> ${CMAKE_SOURCE_DIR}
                 ${CMAKE_BINARY_DIR}/test_tmp/slurm_signal_in_save $<TARGET_FILE:signal_in_save>
                 ${RAE_PYTHON_EXE})
set_tests_properties(slurm_signal_in_save PROPERTIES ENVIRONMENT "${RAE_SLURM_TEST_ENV}"
                     TIMEOUT 300 PROCESSORS 2 LABELS slurm)

# docs/operations.md shows each script's --help verbatim.
add_test(NAME slurm_usage_documented
         COMMAND ${RAE_PYTHON_EXE} ${CMAKE_CURRENT_LIST_DIR}/usage_doc.py ${CMAKE_SOURCE_DIR} --check)
set_tests_properties(slurm_usage_documented PROPERTIES TIMEOUT 60 LABELS slurm)
