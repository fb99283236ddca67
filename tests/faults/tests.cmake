# The fault suite (label `faults`): one test per bad input or fault, named after the case, run by
# tests/faults/faults.sh against the `rae` CLI (see its header). The unit-level cases of the same
# faults (gtest) are registered here too under the label. `ctest -L faults` runs them all.

# Writes a synthetic cache with some samples multiplied (wrong data that passes its checksums).
add_executable(write_spiky_cache ${CMAKE_CURRENT_LIST_DIR}/write_spiky_cache.cpp)
target_link_libraries(write_spiky_cache PRIVATE rae_data)
target_compile_options(write_spiky_cache PRIVATE ${RAE_WARNINGS})
set(RAE_FAULT_CASES
    corrupt_shard_stops_training synth_cache_refuses_nonempty_out synth_cache_huge_channels
    shard_chunks_at_most_shard_size cache_job_output_rules cache_batch_zero
    cache_job_sigkill_ranks image_truncated_jpeg image_bomb_jpeg config_is_directory
    config_nonfinite_lr config_negative_steps run_dir_lock train_sigkill_loop
    watchdog_names_step full_filesystem make_dataset_refuses_nonempty_split
    config_placeholder_no_hang manifest_number_overflow)
foreach(case ${RAE_FAULT_CASES})
  add_test(NAME faults.${case}
           COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/faults.sh $<TARGET_FILE:rae> ${CMAKE_SOURCE_DIR}
                   ${CMAKE_BINARY_DIR}/test-tmp/faults/${case} ${case})
  set_tests_properties(faults.${case} PROPERTIES LABELS faults TIMEOUT 300 SKIP_RETURN_CODE 77
                       ENVIRONMENT "FAULTS_SPIKY_CACHE=$<TARGET_FILE:write_spiky_cache>")
endforeach()
set_tests_properties(faults.cache_job_sigkill_ranks faults.watchdog_names_step PROPERTIES
                     PROCESSORS 2)

# gtest cases of the same faults, by name.
foreach(pair
        "corrupt_shard_rows_named:test_cache_integrity:CacheIntegrity.FlippedBytesInLatentsStopTheReaderNamingShardAndRow"
        "changed_label_named:test_cache_integrity:CacheIntegrity.ChangedLabelFailsAtOpenNamingTheShard"
        "legacy_shard_verified_whole:test_cache_integrity:CacheIntegrity.ShardsWithoutRowChecksumsAreVerifiedWholeAtOpen"
        "images_as_pil:test_image_cases:ImageCases.DecodeAsPilDoes"
        "image_gray16_png_as_pil:test_image_cases:ImageCases.SixteenBitGrayClipsAsPilI16"
        "image_bomb_before_allocation:test_image_cases:ImageCases.BombIsRefusedFromTheHeaderBeforeAllocating")
  string(REPLACE ":" ";" parts "${pair}")
  list(GET parts 0 name)
  list(GET parts 1 exe)
  list(GET parts 2 filter)
  add_test(NAME faults.${name} COMMAND ${exe} --gtest_filter=${filter})
  set_tests_properties(faults.${name} PROPERTIES LABELS faults TIMEOUT 120)
endforeach()
