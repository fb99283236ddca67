# Distributed tests under real mpirun, oversubscribed (the CI machine has 2 cores).
# Running as root in containers needs OMPI_ALLOW_RUN_AS_ROOT*; the shared-memory (vader) and
# self transports are enough for one machine and avoid probing network interfaces.
set(RAE_DIST_TEST_ENV
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    OMPI_MCA_btl=self,vader OMPI_MCA_rmaps_base_oversubscribe=1
    OMPI_MCA_btl_vader_single_copy_mechanism=none)
set(RAE_MPIRUN ${MPIEXEC_EXECUTABLE} --oversubscribe --bind-to none)

add_executable(dist_fault ${CMAKE_CURRENT_LIST_DIR}/dist_fault.cpp)
target_link_libraries(dist_fault PRIVATE rae_distributed)
target_compile_options(dist_fault PRIVATE ${RAE_WARNINGS})

# The sharding core's toy module (a helper source of test_sharded_params).
foreach(prog test_sharded_params test_nccl)
  if(TARGET ${prog})
    target_sources(${prog} PRIVATE ${CMAKE_CURRENT_LIST_DIR}/toy_module.cpp)
  endif()
endforeach()

# Collectives and sharding at 1-4 ranks (sizes not divisible by the world size included).
foreach(prog test_communicator test_sharded_params)
  if(TARGET ${prog})
    foreach(np 1 2 3 4)
      add_test(NAME dist_${prog}_np${np} COMMAND ${RAE_MPIRUN} -np ${np} $<TARGET_FILE:${prog}>)
      set_tests_properties(dist_${prog}_np${np} PROPERTIES ENVIRONMENT "${RAE_DIST_TEST_ENV}"
                           TIMEOUT 60 PROCESSORS 2 LABELS distributed)
    endforeach()
    # Hybrid groups: 4 ranks as 2 "nodes" of 2.
    add_test(NAME dist_${prog}_np4_node2 COMMAND ${RAE_MPIRUN} -np 4 $<TARGET_FILE:${prog}>)
    set_tests_properties(dist_${prog}_np4_node2 PROPERTIES
                         ENVIRONMENT "${RAE_DIST_TEST_ENV};RAE_DIST_NODE_SIZE=2"
                         TIMEOUT 60 PROCESSORS 2 LABELS distributed)
  endif()
endforeach()

# Jobs that must end non-zero in bounded time (expect_failure.sh MAX_SECONDS REGEX -- CMD).
set(expect ${CMAKE_CURRENT_LIST_DIR}/expect_failure.sh)
add_test(NAME dist_fault_ok COMMAND ${RAE_MPIRUN} -np 3 $<TARGET_FILE:dist_fault> ok)
add_test(NAME dist_fault_watchdog_sleeping_rank COMMAND ${expect} 20 "rae dist watchdog.*rank [02]"
         -- ${RAE_MPIRUN} -np 3 $<TARGET_FILE:dist_fault> sleep)
add_test(NAME dist_fault_watchdog_stuck_peer COMMAND ${expect} 20 "waiting in world.barrier"
         -- ${RAE_MPIRUN} -np 4 $<TARGET_FILE:dist_fault> stuck)
add_test(NAME dist_fault_sigkill_rank COMMAND ${expect} 60 "signal 9|Killed|PROCESS GONE"
         -- ${RAE_MPIRUN} -np 3 $<TARGET_FILE:dist_fault> sigkill)
add_test(NAME dist_fault_watchdog_hung_abort_hook COMMAND ${expect} 20 "rae dist watchdog"
         -- ${RAE_MPIRUN} -np 3 $<TARGET_FILE:dist_fault> hook)
# The same with mpirun told not to end the job on a dead rank (as some launchers behave): the
# survivors' watchdog must end it, reporting the dead peer.
add_test(NAME dist_fault_sigkill_rank_watchdog COMMAND ${expect} 30 "PROCESS GONE"
         -- ${RAE_MPIRUN} --mca orte_abort_on_non_zero_status 0 -np 3 $<TARGET_FILE:dist_fault> sigkill)
add_test(NAME dist_fault_config_mismatch COMMAND ${expect} 20 "different configurations.*rank 1 have"
         -- ${RAE_MPIRUN} -np 3 $<TARGET_FILE:dist_fault> config)
set_tests_properties(dist_fault_ok dist_fault_watchdog_sleeping_rank dist_fault_watchdog_stuck_peer
                     dist_fault_watchdog_hung_abort_hook
                     dist_fault_sigkill_rank dist_fault_sigkill_rank_watchdog dist_fault_config_mismatch PROPERTIES
                     ENVIRONMENT "${RAE_DIST_TEST_ENV};RAE_DIST_TIMEOUT_S=3"
                     TIMEOUT 120 PROCESSORS 2 LABELS distributed)

# Distributed training acceptance (tiny preset, synthetic data): losses at 1, 2, 4 ranks under
# no_shard and full_shard vs one process, elastic resume 4 -> 2 ranks, exact resume, export,
# resharding 4 ranks full_shard -> 1 rank no_shard -> 3 ranks hybrid_shard, and a SIGKILLed rank
# ending the job.
foreach(mode losses-no_shard losses-full_shard elastic reshard variants memory kill)
  add_test(NAME dist_train_${mode}
           COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/train_dist.sh $<TARGET_FILE:rae> ${CMAKE_SOURCE_DIR}
                   ${CMAKE_BINARY_DIR}/test_tmp/dist_train_${mode} ${mode})
  set_tests_properties(dist_train_${mode} PROPERTIES ENVIRONMENT "${RAE_DIST_TEST_ENV}"
                       TIMEOUT 300 PROCESSORS 2 LABELS distributed)
endforeach()
