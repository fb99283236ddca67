# End-to-end test of `rae cache` (run with cmake -P; see tests.cmake):
#   make-dataset (10 classes x 30) -> mpirun -np 3 cache (shards of 32) -> manifest has 300 samples,
#   labels match the class folders, verify passes -> delete one shard and rerun: only that shard is
#   written, the others are untouched and the rewritten latents equal the old ones -> corrupt and
#   truncate shards: verify fails naming them. Also a run without mpirun (singleton).
# Variables: RAE, MPIRUN (list), H5DUMP, H5DIFF, WORK.
cmake_minimum_required(VERSION 3.24)
separate_arguments(MPIRUN)

function(run_ok)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "command failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(LAST_OUT "${out}${err}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
set(DS ${WORK}/ds)
set(CDIR ${WORK}/cache)
# Encoder input 112 (an 8x8 grid) keeps the tiny encoder cheap on a 2-core machine.
set(JOB ${RAE} cache --data ${DS} --out ${CDIR} --encoder tiny-random --encoder-input 112
    --shard-size 32 --batch 16 --threads 1 --progress 1)

run_ok(${RAE} make-dataset --out ${DS} --classes 10 --per-class 30 --size 48)
run_ok(${MPIRUN} -np 3 ${JOB})
message(STATUS "first run:\n${LAST_OUT}")
if(NOT LAST_OUT MATCHES "shards: 10 written, 0 verified and skipped")
  message(FATAL_ERROR "first run did not write 10 shards")
endif()

# Manifest: 300 samples in 10 shards, 10 classes named as the folders.
file(READ ${CDIR}/manifest.json manifest)
string(JSON total GET "${manifest}" total_samples)
string(JSON nshards LENGTH "${manifest}" shards)
string(JSON nclasses GET "${manifest}" num_classes)
string(JSON class3 GET "${manifest}" class_names 3)
if(NOT total EQUAL 300 OR NOT nshards EQUAL 10 OR NOT nclasses EQUAL 10 OR NOT class3 STREQUAL "n00000003")
  message(FATAL_ERROR "manifest: total ${total}, shards ${nshards}, classes ${nclasses}, class 3 ${class3}")
endif()
if(NOT EXISTS ${CDIR}/stats.safetensors)
  message(FATAL_ERROR "no stats.safetensors")
endif()

# Labels: sample i (sorted class folders, sorted files) has label i / 30.
math(EXPR last "${nshards} - 1")
foreach(k RANGE ${last})
  string(JSON file GET "${manifest}" shards ${k} file)
  string(JSON first GET "${manifest}" shards ${k} first_index)
  execute_process(COMMAND ${H5DUMP} -d /labels -y -w 0 ${CDIR}/${file} OUTPUT_VARIABLE dump RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0 OR NOT dump MATCHES "DATA {([^}]*)}")
    message(FATAL_ERROR "cannot read labels of ${file}")
  endif()
  string(REGEX REPLACE "[ \n\r\t]" "" labels "${CMAKE_MATCH_1}")
  string(REPLACE "," ";" labels "${labels}")
  set(i ${first})
  foreach(label ${labels})
    math(EXPR expect "${i} / 30")
    if(NOT label EQUAL expect)
      message(FATAL_ERROR "${file}: sample ${i} has label ${label}, expected ${expect}")
    endif()
    math(EXPR i "${i} + 1")
  endforeach()
endforeach()

run_ok(${RAE} cache verify ${CDIR})

# Delete one shard and rerun: only it is rewritten, with identical latents.
file(COPY_FILE ${CDIR}/shard-00004.h5 ${WORK}/shard-00004.before.h5)
foreach(k 0 1 2 3 5 6 7 8 9)
  file(SHA256 ${CDIR}/shard-0000${k}.h5 before_${k})
endforeach()
file(REMOVE ${CDIR}/shard-00004.h5)
execute_process(COMMAND ${RAE} cache verify ${CDIR} RESULT_VARIABLE rc ERROR_VARIABLE err OUTPUT_VARIABLE out)
if(rc EQUAL 0 OR NOT "${out}${err}" MATCHES "shard-00004.h5")
  message(FATAL_ERROR "verify did not report the missing shard:\n${out}${err}")
endif()
run_ok(${MPIRUN} -np 3 ${JOB})
message(STATUS "rerun:\n${LAST_OUT}")
if(NOT LAST_OUT MATCHES "shards: 1 written, 9 verified and skipped")
  message(FATAL_ERROR "rerun did not write exactly one shard")
endif()
foreach(k 0 1 2 3 5 6 7 8 9)
  file(SHA256 ${CDIR}/shard-0000${k}.h5 after)
  if(NOT after STREQUAL before_${k})
    message(FATAL_ERROR "shard-0000${k}.h5 changed on rerun")
  endif()
endforeach()
foreach(dset /latents /latents_flip /labels /index)
  run_ok(${H5DIFF} ${WORK}/shard-00004.before.h5 ${CDIR}/shard-00004.h5 ${dset} ${dset})
endforeach()
run_ok(${RAE} cache verify ${CDIR})

# Corrupt one shard (bytes in the middle) and truncate another: verify fails naming both.
file(SIZE ${CDIR}/shard-00007.h5 size7)
math(EXPR mid "${size7} / 2")
run_ok(sh -c "printf 'CORRUPTCORRUPT' | dd of='${CDIR}/shard-00007.h5' bs=1 seek=${mid} conv=notrunc status=none")
run_ok(truncate -s 1000 ${CDIR}/shard-00002.h5)
execute_process(COMMAND ${RAE} cache verify ${CDIR} RESULT_VARIABLE rc ERROR_VARIABLE err OUTPUT_VARIABLE out)
message(STATUS "verify of the damaged cache (rc ${rc}):\n${out}${err}")
if(rc EQUAL 0 OR NOT "${out}${err}" MATCHES "shard-00007.h5[^\n]*corrupt" OR NOT "${out}${err}" MATCHES "shard-00002.h5[^\n]*truncated")
  message(FATAL_ERROR "verify did not name the corrupt and the truncated shard")
endif()

# A rerun repairs both.
run_ok(${MPIRUN} -np 3 ${JOB})
if(NOT LAST_OUT MATCHES "shards: 2 written, 8 verified and skipped")
  message(FATAL_ERROR "repair run:\n${LAST_OUT}")
endif()
run_ok(${RAE} cache verify ${CDIR})

# Without mpirun (MPI singleton): the whole dataset gives the same statistics bit for bit (shard
# statistics merged in shard order, whatever the rank count) and the same latents.
run_ok(${RAE} cache --data ${DS} --out ${WORK}/single --encoder tiny-random --encoder-input 112
       --shard-size 32 --batch 16 --threads 1)
if(NOT LAST_OUT MATCHES "shards: 10 written")
  message(FATAL_ERROR "singleton run:\n${LAST_OUT}")
endif()
run_ok(${RAE} cache verify ${WORK}/single)
file(SHA256 ${WORK}/single/stats.safetensors stats_single)
file(SHA256 ${CDIR}/stats.safetensors stats_mpi)
if(NOT stats_single STREQUAL stats_mpi)
  message(FATAL_ERROR "stats.safetensors differs between 1 and 3 ranks")
endif()
foreach(dset /latents /latents_flip)
  run_ok(${H5DIFF} ${WORK}/single/shard-00009.h5 ${CDIR}/shard-00009.h5 ${dset} ${dset})
endforeach()
# An undecodable image fails the job (no hang) with a message naming the file; other settings on
# an existing cache are refused naming the setting.
file(WRITE ${DS}/train/n00000003/zz_broken.JPEG "not an image")
execute_process(COMMAND ${MPIRUN} -np 3 ${RAE} cache --data ${DS} --out ${WORK}/broken --encoder tiny-random
                --encoder-input 112 --shard-size 32 --threads 1
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 120)
if(rc EQUAL 0 OR NOT "${out}${err}" MATCHES "zz_broken.JPEG")
  message(FATAL_ERROR "broken image: rc ${rc}\n${out}${err}")
endif()
execute_process(COMMAND ${RAE} cache --data ${DS} --out ${CDIR} --encoder tiny-random --encoder-input 112
                --shard-size 64 RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 0 OR NOT "${out}${err}" MATCHES "different settings: 'images'|different settings: 'shard_size'")
  message(FATAL_ERROR "changed settings were not refused: rc ${rc}\n${out}${err}")
endif()
file(REMOVE_RECURSE ${WORK})
