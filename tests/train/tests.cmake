# CPU acceptance of stage-2 training (tiny preset, synthetic cache): loss drops and resume is exact.
add_test(NAME train_acceptance_tiny
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/acceptance.sh $<TARGET_FILE:rae> ${CMAKE_SOURCE_DIR}
                 ${CMAKE_BINARY_DIR}/test_tmp/train_acceptance)
set_tests_properties(train_acceptance_tiny PROPERTIES TIMEOUT 600)
# Checkpoints killed mid-write (SIGKILL in the writer): invisible, resumed, byte-identical.
add_test(NAME train_checkpoint_killed_mid_write
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/crash.sh $<TARGET_FILE:rae> ${CMAKE_SOURCE_DIR}
                 ${CMAKE_BINARY_DIR}/test_tmp/train_crash)
set_tests_properties(train_checkpoint_killed_mid_write PROPERTIES TIMEOUT 120 LABELS train)
