# Stage-1 decoder training through `rae decoder-train` (label stage1): exact resume (20 steps vs
# 10 + 10), a change of rank count (2 ranks -> 1 rank, and 2 -> 2 byte-identical), and the
# reconstruction grids and rFID on 2 ranks.
set(RAE_STAGE1_TEST_ENV
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    OMPI_MCA_btl=self,vader OMPI_MCA_rmaps_base_oversubscribe=1
    OMPI_MCA_btl_vader_single_copy_mechanism=none)
foreach(mode exact ranks monitor)
  add_test(NAME stage1_resume_${mode}
           COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/resume.sh $<TARGET_FILE:rae> ${CMAKE_SOURCE_DIR}
                   ${CMAKE_BINARY_DIR}/test_tmp/stage1_resume_${mode} ${mode})
  set_tests_properties(stage1_resume_${mode} PROPERTIES ENVIRONMENT "${RAE_STAGE1_TEST_ENV}"
                       TIMEOUT 300 PROCESSORS 2 LABELS stage1)
endforeach()

# tools/convert_stage1_weights.py on torch.save'd VGG16 / LPIPS heads / timm DINO state dicts
# (skipped without torch, torchvision, timm: the CI's Python has none of them).
add_test(NAME stage1_convert_weights
         COMMAND ${RAE_PYTHON_EXE} ${CMAKE_CURRENT_LIST_DIR}/convert_weights_check.py ${CMAKE_SOURCE_DIR}
                 ${CMAKE_BINARY_DIR}/test_tmp/stage1_convert_weights)
set_tests_properties(stage1_convert_weights PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77 LABELS stage1)
