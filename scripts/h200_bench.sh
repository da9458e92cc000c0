#!/usr/bin/env bash
# The speed benchmark on one H200 in one call (issue: speed against the physical limit), each part
# resumable: rerun the same command on a later call and it measures only what is missing.
#   0. gputests: the kernels' compiled-on-GPU tests (decode attention incl. the split cache, the fused
#      training attention), OUT/gputests.log; worth running first after a kernel changed.
#   1. Table 2 at the paper's WMT dims, Pallas kernels: ceilings (random data, past L2, datasheet),
#      greedy / beam-4 decoder and training for the four rows of the paper's Table 2 (VARIANTS).
#      PROFILE=1: also trace each variant's greedy and beam decode and two training steps (where
#      the time goes, for a missed target), into bench.json's profiles / beam_profiles / train_profile.
#   2. LM decoding beside HF transformers and a compiled PyTorch decoder (torch and transformers are
#      in the GPU image): MHA / MQA / GQA, batch 1, 8, 64, 1024; 128 and 1024 new tokens.
#   3. The decode-attention microbenchmark (XLA against the kernel's tunings, K/V past L2).
#   4. The sweeps (length, batch, kv heads).
#   5. train_fused: Table 2's training step with the fused attention kernel
#      (--config.model.train_attention_impl=pallas), profiled, into OUT/train_fused.json (a setting of
#      its own; the profile: where the step goes with the kernel).
#   6. lm_profile: our LM's greedy step traced (multi-head and multi-query, batch 1 and 1024, 128 and
#      1024 new tokens): where a step's device time goes and how busy the device is, into
#      OUT/lm_profile.json (its own file: a setting of its own; traces stay on the machine).
# All parts fill OUT/bench.json (bench --resume keeps the parts a command does not measure); copy it
# to results/h200/bench.json, where `mqa-repro tables` and the README read it. OUT starts empty on
# every call: to go on from an earlier call, bring its bench.json with the working tree and name it
# in FROM (e.g. FROM=results/h200/bench.json); its finished parts are kept, not measured again.
# usage: scripts/h200_bench.sh OUT [PARTS]   PARTS: any of gputests,table2,lm,kernels,sweeps,train_fused,
#        lm_profile (default: table2,lm,kernels,sweeps)
# Wheels (.gpu/whl: ml_collections) travel with `carry`; SIZE=tiny runs the same steps on a CPU.
# Put MQA_REPRO_COMMIT=<the commit you ran> on the command line: the device's copy of the tree may
# report another HEAD (results/h200/logs/README.md, calls 15-16), and every run records the commit.
set -u
out=${1:?OUT}; parts=${2:-table2,lm,kernels,sweeps}
size=${SIZE:-paper}; variants=${VARIANTS:-mha,mqa,mha_local,mqa_local}
if [ -d .gpu/whl ]; then
  python3 -m pip install -q --no-index --no-deps --upgrade --target /tmp/site .gpu/whl/*.whl \
    && export PYTHONPATH=/tmp/site:$PWD
fi
export JAX_COMPILATION_CACHE_DIR=/tmp/jaxcache NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
end=$(( $(date +%s) + ${LIMIT:-570} ))
if [ -n "${FROM:-}" ]; then cp "$FROM" $out/bench.json || exit 1; fi
left() { echo $(( end - $(date +%s) )); }
bench() {  # NAME ARGS...: one part, cut at the call's end
  local name=$1; shift
  [ "$(left)" -gt 20 ] || { echo "$name: no time left" >> $out/bench.log; return; }
  timeout $(left) python3 -m mqa_repro.cli bench --size $size --resume --time-budget $(( $(left) - 15 )) \
    --out $out/bench.json "$@" 2>&1 | grep --line-buffered -v '^ *$' >> $out/bench.log
  echo "$name exit ${PIPESTATUS[0]}" >> $out/bench.log
}
case ,$parts, in *,gputests,*)
  timeout $(left) python3 -m pytest -q -p no:cacheprovider tests/test_kernels.py tests/test_flash_attention.py \
    -k gpu > $out/gputests.log 2>&1; echo "gputests exit $?" >> $out/bench.log; tail -3 $out/gputests.log ;; esac
case ,$parts, in *,table2,*) bench table2 --variants $variants --no-sweeps --attention-impl pallas \
  ${PROFILE:+--profile /tmp/table2_trace} ;; esac
case ,$parts, in *,lm,*) bench lm_decode --parts lm_decode --peers hf,torch \
  --attention-impl pallas ${LM_ARGS:-} ;; esac
case ,$parts, in *,kernels,*) bench kernels --kernels ;; esac
case ,$parts, in *,sweeps,*) bench sweeps --sweeps-only --variants mha,mqa --attention-impl pallas ;; esac
case ,$parts, in *,train_fused,*) bench train_fused --variants mha,mqa --parts train --no-sweeps \
  --config.model.train_attention_impl=pallas --profile /tmp/train_trace --out $out/train_fused.json ;; esac
case ,$parts, in *,lm_profile,*) bench lm_profile --parts lm_decode --peers '' --lm-variants mha,mqa \
  --lm-batches 1,1024 --lm-new-tokens 128,1024 --lm-repeats 1 --profile /tmp/lm_trace \
  --attention-impl pallas --out $out/lm_profile.json ;; esac
grep -E "exit|wrote|no time" $out/bench.log
