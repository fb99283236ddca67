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
    config_placeholder_no_hang manifest_number_overflow resume_no_valid_checkpoint
    resume_skips_invalid_newest restart_from_scratch_keeps_a_valid_run
    retention_keeps_newest_valid interrupted_save_temporaries_removed resume_changed_seed_or_batch
    checkpoint_tensor_wrong_shape_same_count checkpoint_tensor_declared_i32
    model_file_tensor_shape_and_dtype model_config_heads_zero model_config_malformed
    encoder_config_heads_zero loss_spike_corrupt_values loss_spike_diverging_lr
    image_bomb_65500_jpeg checksums_agree_with_xxhsum)
# `rae sample` / `rae decode` / `rae reconstruct` argument and input checks (issue 11's cases).
set(RAE_SAMPLE_FAULT_CASES
    sample_cfg_scale_nan sample_cfg_scale_inf sample_cfg_scale_below_one sample_shift_base_zero
    sample_shift_base_negative sample_shift_base_nan sample_labels_empty_item
    sample_labels_not_integer sample_labels_trailing_comma sample_label_out_of_range
    sample_labels_with_num_per_class sample_classes_range_backwards sample_class_out_of_range
    sample_class_negative sample_classes_without_num_per_class sample_num_per_class_zero
    sample_cfg_interval_empty sample_cfg_interval_malformed sample_sde_sbdm sample_unknown_sampler
    sample_steps_one sample_guide_without_cfg sample_decoder_latent_mismatch
    sample_decoder_is_not_a_decoder sample_model_missing sample_stats_wrong_shape
    sample_run_dir_without_checkpoint sample_rerun_other_settings decode_latents_without_stats
    reconstruct_ref_without_inception)
list(APPEND RAE_FAULT_CASES ${RAE_SAMPLE_FAULT_CASES})
foreach(case ${RAE_FAULT_CASES})
  add_test(NAME faults.${case}
           COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/faults.sh $<TARGET_FILE:rae> ${CMAKE_SOURCE_DIR}
                   ${CMAKE_BINARY_DIR}/test-tmp/faults/${case} ${case})
  set_tests_properties(faults.${case} PROPERTIES LABELS faults TIMEOUT 300 SKIP_RETURN_CODE 77
                       ENVIRONMENT
                       "FAULTS_SPIKY_CACHE=$<TARGET_FILE:write_spiky_cache>;FAULTS_PYTHON=${RAE_PYTHON_EXE}")
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
        "image_bomb_before_allocation:test_image_cases:ImageCases.BombIsRefusedFromTheHeaderBeforeAllocating"
        "retention_never_deletes_below_invalid_newest:test_run_dir:RunDir.RetentionNeverDeletesBelowAnInvalidNewest"
        "interrupted_saves_removed_by_name_only:test_run_dir:RunDir.InterruptedSavesAreRemovedByNameOnly"
        "no_valid_checkpoint_refuses_then_restarts:test_run_dir:RunDir.NoValidCheckpointRefusesThenRestartsFromScratch"
        "invalid_newer_checkpoints_set_aside:test_run_dir:RunDir.InvalidNewerCheckpointsAreSetAsideOnResume"
        "loss_spike_stops_before_update:test_run_dir:RunDir.LossSpikeStopsBeforeTheUpdate"
        "data_order_signature_on_resume:test_trainer:Trainer.DataOrderSignatureIsCheckedOnResume"
        "model_config_every_key_validated:test_model_registry:ModelRegistry.EveryConfigKeyIsValidated"
        "load_state_dict_shape_and_dtype:test_model_registry:ModelRegistry.LoadStateDictChecksShapeAndDtype"
        "encoder_config_sizes_validated:test_encoders:Encoders.ConfigSizesAreValidated"
        "non_finite_steps_skipped_then_abort:test_trainer:Trainer.NonFiniteStepsAreSkippedThenAbort")
  string(REPLACE ":" ";" parts "${pair}")
  list(GET parts 0 name)
  list(GET parts 1 exe)
  list(GET parts 2 filter)
  add_test(NAME faults.${name} COMMAND ${exe} --gtest_filter=${filter})
  set_tests_properties(faults.${name} PROPERTIES LABELS faults TIMEOUT 120)
endforeach()
