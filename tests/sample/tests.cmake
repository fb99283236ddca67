# `rae sample` as a job (sample_job.sh): 1 vs 3 ranks byte-identical, resume after SIGKILL, the
# .npz read by numpy. The CLI gtest (test_sample_cli) runs the rae executable too.
add_dependencies(test_sample_cli rae)
foreach(mode ranks resume npz)
  add_test(NAME sample.job_${mode}
           COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/sample_job.sh ${mode} $<TARGET_FILE:rae>
                   ${RAE_PYTHON_EXE} ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR}/test-tmp/sample-job-${mode})
  set_tests_properties(sample.job_${mode} PROPERTIES TIMEOUT 180 PROCESSORS 2 LABELS "sample;mpi")
endforeach()
# The converter's decoder round trip (needs torch in the test Python: skipped without it).
add_test(NAME sample.convert_decoder_roundtrip
         COMMAND ${RAE_PYTHON_EXE} ${CMAKE_CURRENT_LIST_DIR}/convert_decoder_roundtrip.py
                 ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR}/test-tmp/convert-decoder)
set_tests_properties(sample.convert_decoder_roundtrip PROPERTIES TIMEOUT 120 LABELS sample
                     SKIP_RETURN_CODE 77)
