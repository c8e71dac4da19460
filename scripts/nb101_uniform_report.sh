#!/usr/bin/env bash
# Issue 17: reports on the uniform NAS-Bench-101 sample (scripts/nb101_tables.sh, scripts/nb101_proxies.sh), from
# whatever those resumable jobs have scored so far (seconds). Cells are joined by module hash with the shared 30,001-cell
# table; target: val_acc_108 (%, NAS-Bench-101's 108-epoch validation accuracy of one training run).
#   results/nb101/uniform/gradsign/            GradSign alone (gradsign eval: statistics, bootstrap intervals, plots)
#   results/nb101/uniform/label_free/          the label-free rule of NAS-Bench-201, unchanged, and each proxy alone
#   results/nb101/uniform/label_free_consensus/  its proxies oriented by consensus (--orientation consensus), no label
#   results/nb101/uniform/transfer_cifar10_rule/  the rule fitted on NAS-Bench-201 CIFAR-10, unchanged (--rule)
#   results/nb101/uniform/ensemble/            the rank ensemble fitted on 20% of these cells, held-out statistics
#   results/nb101/uniform/few_shot/            the same fit on 50 / 100 cells of that 20% (10 seeded draws each)
#   results/nb201/proxies/transfer_nb101_rule_{cifar10,cifar100,imagenet16}/  the other way: the rule of
#                                              results/nb101/uniform/ensemble, unchanged, on NAS-Bench-201
#   results/nb101/uniform/gradient_proxies/    the same label-free rule and every proxy alone on the cells that the
#                                              gradient proxies (snip, grad_norm, fisher) have reached
# Usage: bash scripts/nb101_uniform_report.sh
set -euo pipefail
cd "$(dirname "$0")/.."
truth=${GRADSIGN_DATA:-../shared/data}/nb101/nb101_cifar10_30k.csv
dir=results/nb101
out=$dir/uniform
gradsign=$dir/gradsign_cifar10.csv
proxies=$dir/proxies_cifar10.csv
gradients=$dir/proxies_gradients_cifar10.csv
rows() { if [ -f "$1" ]; then echo $(($(wc -l < "$1") - 1)); else echo 0; fi; }
join=(--truth "$truth" --target val_acc_108 --on hash)
protocol="first 128 CIFAR-10 training images, PyTorch-default initialisation with weight seed 42"
.venv/bin/gradsign eval "$gradsign" "${join[@]}" --report "$out/gradsign" \
  --title "GradSign on a uniform sample of NAS-Bench-101 (CIFAR-10)" \
  --notes "GradSign on $(rows "$gradsign") cells of a uniform 2000-cell sample of the 30,001-cell table (bash scripts/nb101_tables.sh, sample seed 0; $protocol), against val_acc_108: one training run's validation accuracy at 108 epochs. Command: bash scripts/nb101_uniform_report.sh." >/dev/null
cells=$(rows "$proxies")
if [ "$cells" -lt 20 ]; then
  echo "gradsign: $(rows "$gradsign") cells; proxies: $cells cells, too few for the ensembles yet"; exit 0
fi
both="the cells that both $gradsign ($(rows "$gradsign") cells) and $proxies ($cells) hold, of a uniform 2000-cell sample of the 30,001-cell table ($protocol, proxy mini-batch 64); target: val_acc_108 (one training run). Command: bash scripts/nb101_uniform_report.sh."
.venv/bin/gradsign ensemble "$gradsign" "$proxies" "${join[@]}" --fixed gradsign,synflow,nwot,jacob_cov,live_params \
  --report "$out/label_free" --notes "Label-free on NAS-Bench-101: the fixed rule of results/nb201/proxies/label_free_cifar10 (mean log-rank of GradSign, synflow, nwot, jacob_cov, live_params, each larger-is-better), unchanged, on $both" >/dev/null
.venv/bin/gradsign ensemble "$gradsign" "$proxies" "${join[@]}" --fixed gradsign,synflow,nwot,jacob_cov,live_params \
  --orientation consensus --report "$out/label_free_consensus" --notes "Label-free on NAS-Bench-101: the proxies of the NAS-Bench-201 rule (GradSign, synflow, nwot, jacob_cov, live_params), each oriented by consensus (the signs under which their pairwise Spearman correlations sum highest, the majority larger-is-better; no accuracy is read), mean log-rank, on $both" >/dev/null
.venv/bin/gradsign ensemble "$gradsign" "$proxies" "${join[@]}" --rule results/nb201/proxies/ensemble/ensemble.json \
  --report "$out/transfer_cifar10_rule" --notes "The rule fitted on NAS-Bench-201 CIFAR-10 (results/nb201/proxies/ensemble), unchanged, on $both" >/dev/null
# The label-free rules above are evaluated again on the fit's held-out cells, beside it (--compare).
compare=(--compare "$out/label_free/ensemble.json" --compare "$out/label_free_consensus/ensemble.json"
         --compare "$out/transfer_cifar10_rule/ensemble.json")
.venv/bin/gradsign ensemble "$gradsign" "$proxies" "${join[@]}" --train-fraction 0.2 --seed 0 "${compare[@]}" \
  --report "$out/ensemble" --notes "Fitted on NAS-Bench-101 labels: the rank ensemble fitted on a seeded 20% of $both Every statistic is on the other 80%." >/dev/null
.venv/bin/gradsign ensemble "$gradsign" "$proxies" "${join[@]}" --train-fraction 0.2 --seed 0 --train-size 50,100 \
  --splits 10 --report "$out/few_shot" --notes "Few-shot on NAS-Bench-101: the fit of $out/ensemble with its training set cut to 50 and 100 labelled cells, 10 seeded draws each, on $both" >/dev/null
nb201=results/nb201; other=${GRADSIGN_DATA:-../shared/data}/nb201/nb201_cifar100_imagenet16.csv
fitted="the rule fitted on NAS-Bench-101 labels (results/nb101/uniform/ensemble: 20% of the uniform cells both tables hold, val_acc_108), unchanged, using no NAS-Bench-201 label. Command: bash scripts/nb101_uniform_report.sh."
.venv/bin/gradsign ensemble "$nb201/gradsign_cifar10.csv" "$nb201/proxies/cheap_cifar10.csv" \
  "$nb201/proxies/jacob_cov_cifar10.csv" --rule "$out/ensemble/ensemble.json" \
  --report "$nb201/proxies/transfer_nb101_rule_cifar10" --notes "NAS-Bench-201 CIFAR-10, all 15625 cells: $fitted" >/dev/null
for pair in cifar100:c100 imagenet16:in16; do
  dataset=${pair%%:*}
  .venv/bin/gradsign ensemble "$nb201/gradsign_$dataset.csv" "$nb201/proxies/proxies_$dataset.csv" --truth "$other" \
    --target "${pair##*:}_test_200ep" --rule "$out/ensemble/ensemble.json" \
    --report "$nb201/proxies/transfer_nb101_rule_$dataset" --notes "NAS-Bench-201 $dataset, uniform 1000 cells: $fitted" >/dev/null
done
if [ "$(rows "$gradients")" -ge 20 ]; then
  .venv/bin/gradsign ensemble "$gradsign" "$proxies" "$gradients" "${join[@]}" \
    --fixed gradsign,synflow,nwot,jacob_cov,live_params --report "$out/gradient_proxies" \
    --notes "Every proxy alone, and the label-free rule of NAS-Bench-201, on the cells that $gradients ($(rows "$gradients") cells: the first 500 by row of the 2000) also holds; otherwise as ${both/the cells that both/the cells that}" >/dev/null
fi
echo "reports on $(rows "$gradsign") GradSign cells and $cells proxy cells written to $out/"
