#!/usr/bin/env bash
# Issue 17: the rules that read no label of the dataset they rank, on NAS-Bench-201 (seconds), from the proxy tables of
# scripts/nb201_ensemble.sh (CIFAR-10, all 15625 cells) and scripts/nb201_label_free.sh (CIFAR-100 and the ImageNet16
# stand-in, the uniform 1000 cells, each proxy on that dataset's own images):
#   results/nb201/proxies/label_free_{cifar10,cifar100,imagenet16}/   the fixed rule: mean log-rank of GradSign,
#                                        synflow, nwot, jacob_cov and live_params, each larger-is-better
#   results/nb201/proxies/label_free_consensus_{cifar10,cifar100,imagenet16}/   the same proxies oriented by
#                                        consensus (--orientation consensus: the signs under which they agree most)
#   results/nb201/proxies/transfer_cifar10_rule_{cifar100,imagenet16}/   the CIFAR-10 fit (results/nb201/proxies/ensemble,
#                                        scripts/nb201_ensemble.sh) applied unchanged (--rule)
# Usage: bash scripts/nb201_label_free_report.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=results/nb201/proxies
other=${GRADSIGN_DATA:-../shared/data}/nb201/nb201_cifar100_imagenet16.csv
proxies=gradsign,synflow,nwot,jacob_cov,live_params
fixed="the mean log-rank of GradSign, synflow, nwot, jacob_cov and live_params (live_params stands for params and flops, which count weights cut off by none edges), each larger-is-better, fixed before looking at any accuracy; nothing is fitted"
consensus="the same five proxies, each oriented by consensus (the signs under which their pairwise Spearman correlations sum highest, the majority larger-is-better; no accuracy is read), mean log-rank; nothing is fitted"
command="Command: bash scripts/nb201_label_free_report.sh."
c10=(results/nb201/gradsign_cifar10.csv "$out/cheap_cifar10.csv" "$out/jacob_cov_cifar10.csv")
.venv/bin/gradsign ensemble "${c10[@]}" --fixed "$proxies" --report "$out/label_free_cifar10" \
  --notes "Label-free, CIFAR-10, all 15625 networks: $fixed. AZ-NAS reports 0.913 on all 15625. $command" >/dev/null
.venv/bin/gradsign ensemble "${c10[@]}" --fixed "$proxies" --orientation consensus \
  --report "$out/label_free_consensus_cifar10" \
  --notes "Label-free, CIFAR-10, all 15625 networks: $consensus. AZ-NAS reports 0.913 on all 15625. $command" >/dev/null
for entry in cifar100:c100:CIFAR-100:0.900 imagenet16:in16:ImageNet16-120:0.886; do
  IFS=: read -r dataset prefix name aznas <<< "$entry"
  tables=(results/nb201/gradsign_$dataset.csv "$out/proxies_$dataset.csv")
  on=(--truth "$other" --target "${prefix}_test_200ep")
  sample="the uniform sample of 1000 cells, each proxy computed on $name's own images (bash scripts/nb201_label_free.sh; for ImageNet16-120 the stand-in: real ImageNet photos at 16x16, not the official pixels)"
  .venv/bin/gradsign ensemble "${tables[@]}" "${on[@]}" --fixed "$proxies" --report "$out/label_free_$dataset" \
    --notes "Label-free, $name, $sample: $fixed. AZ-NAS reports $aznas on all 15625. $command" >/dev/null
  .venv/bin/gradsign ensemble "${tables[@]}" "${on[@]}" --fixed "$proxies" --orientation consensus \
    --report "$out/label_free_consensus_$dataset" \
    --notes "Label-free, $name, $sample: $consensus. AZ-NAS reports $aznas on all 15625. $command" >/dev/null
  .venv/bin/gradsign ensemble "${tables[@]}" "${on[@]}" --rule "$out/ensemble/ensemble.json" \
    --report "$out/transfer_cifar10_rule_$dataset" \
    --notes "The rule fitted on CIFAR-10 (results/nb201/proxies/ensemble) applied unchanged to $name, $sample: no $name label is used. $command" >/dev/null
done
echo "reports written to $out/{label_free,label_free_consensus,transfer_cifar10_rule}_*"
