# The README's first command's pipeline (scripts/demo-run.sh, what scripts/demo.sh runs after
# installing and building) with few steps: every stage runs and writes results/demo's files;
# demo_pipeline.sh checks them (the class-agreement line, the images, the JSON).
add_test(NAME demo_pipeline
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/demo_pipeline.sh $<TARGET_FILE:rae> ${CMAKE_SOURCE_DIR}
                 ${CMAKE_BINARY_DIR}/test-tmp/demo ${RAE_PYTHON_EXE})
set_tests_properties(demo_pipeline PROPERTIES TIMEOUT 600 PROCESSORS 2 LABELS demo
                     ENVIRONMENT "OMPI_MCA_btl=self,vader;OMPI_MCA_btl_vader_single_copy_mechanism=none")
