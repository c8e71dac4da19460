#!/usr/bin/env bash
# Issue 17: reports on the NAS-Bench-101 cells scored by scripts/nb101_peer_proxies.sh (whatever it has scored so far;
# seconds). Cells are joined by module hash; NASLib's sample lists some cells several times, so its published values and
# accuracies are averaged per cell (--mean-duplicates). Target: the sample's own val_accuracy (%, one training run per
# query, NAS-Bench-101's 108-epoch validation accuracy).
#   results/nb101/peer_validation/            ours vs published, GradSign and the label-free proxies
#   results/nb101/peer_validation_gradients/  the same for snip, grad_norm, fisher (once that pass has rows)
#   results/nb101/label_free_peer/            the label-free rule of NAS-Bench-201, unchanged
#   results/nb101/label_free_consensus_peer/  its proxies oriented by consensus (--orientation consensus), no label
#   results/nb101/transfer_cifar10_rule_peer/ the rule fitted on NAS-Bench-201 CIFAR-10, unchanged
#   results/nb101/ensemble_peer/              the rank ensemble fitted on NB101 labels: a seeded 20% of these cells
#   results/nb201/proxies/transfer_nb101_peer_rule_validation/  that rule, unchanged, on NAS-Bench-201's 1000
#                                             validation cells (CIFAR-10, the ten baselines' table)
# Usage: bash scripts/nb101_peer_report.sh
set -euo pipefail
cd "$(dirname "$0")/.."
peer=${GRADSIGN_DATA:-../shared/data}/nb101/nb101_peer_proxies_500.csv
out=results/nb101
main=$out/proxies_peer500.csv
gradients=$out/proxies_peer500_gradients.csv
cells=$(($(wc -l < "$main") - 1))
join=(--on hash --mean-duplicates --truth "$peer" --target val_accuracy)
title="Proxies vs published values (NAS-Bench-101, CIFAR-10)"
note="NAS-Bench-101: this project's proxies on $cells of the 292 cells of NASLib's sample (bash scripts/nb101_peer_proxies.sh; first 128 CIFAR-10 training images, weight seed 42, proxy mini-batch 64) against the values NASLib published for the same cells (nb101_peer_proxies_500.csv, duplicates averaged), and each one's correlation with that sample's val_accuracy. Command: bash scripts/nb101_peer_report.sh."
# validate exits 1 when a proxy is below the 0.9 agreement bar: that is a result here, not a failure of the script.
.venv/bin/gradsign validate "$main" --published "$peer" "${join[@]}" --title "$title" --notes "$note" \
  --report "$out/peer_validation" || [ $? -eq 1 ]
if [ -f "$gradients" ] && [ "$(wc -l < "$gradients")" -gt 3 ]; then
  note_g="${note/on $cells of/on $(($(wc -l < "$gradients") - 1)) of} Gradient proxies (second pass)."
  .venv/bin/gradsign validate "$gradients" --published "$peer" "${join[@]}" --title "$title" --notes "$note_g" \
    --report "$out/peer_validation_gradients" || [ $? -eq 1 ]
fi
.venv/bin/gradsign ensemble "$main" "${join[@]}" --fixed gradsign,synflow,nwot,jacob_cov,live_params \
  --report "$out/label_free_peer" --notes "Label-free (issue 17) on NAS-Bench-101: the fixed rule of results/nb201/proxies/label_free_cifar10 (mean log-rank of GradSign, synflow, nwot, jacob_cov, live_params, each larger-is-better), unchanged, on $cells cells of NASLib's sample; target: that sample's val_accuracy (duplicates averaged). Command: bash scripts/nb101_peer_report.sh." >/dev/null
.venv/bin/gradsign ensemble "$main" "${join[@]}" --fixed gradsign,synflow,nwot,jacob_cov,live_params \
  --orientation consensus --report "$out/label_free_consensus_peer" --notes "Label-free on NAS-Bench-101: the proxies of the NAS-Bench-201 rule (GradSign, synflow, nwot, jacob_cov, live_params), each oriented by consensus (the signs under which their pairwise Spearman correlations sum highest, the majority larger-is-better; no accuracy is read), mean log-rank, on $cells cells of NASLib's sample; target: that sample's val_accuracy (duplicates averaged). Command: bash scripts/nb101_peer_report.sh." >/dev/null
.venv/bin/gradsign ensemble "$main" "${join[@]}" --rule results/nb201/proxies/ensemble/ensemble.json \
  --report "$out/transfer_cifar10_rule_peer" --notes "The rule fitted on NAS-Bench-201 CIFAR-10 (results/nb201/proxies/ensemble) applied unchanged to $cells NAS-Bench-101 cells of NASLib's sample: no NAS-Bench-101 label is used. Command: bash scripts/nb101_peer_report.sh." >/dev/null
# The fitted ensemble takes the gradient proxies as candidates too once their pass has every cell.
tables=("$main")
[ -f "$gradients" ] && [ "$(wc -l < "$gradients")" -eq "$(wc -l < "$main")" ] && tables+=("$gradients")
compare=(--compare "$out/label_free_peer/ensemble.json" --compare "$out/label_free_consensus_peer/ensemble.json"
         --compare "$out/transfer_cifar10_rule_peer/ensemble.json")
.venv/bin/gradsign ensemble "${tables[@]}" "${join[@]}" --train-fraction 0.2 --seed 0 "${compare[@]}" \
  --report "$out/ensemble_peer" --notes "Fitted on NAS-Bench-101 labels, for comparison with the label-free rules: the rank ensemble fitted on a seeded 20% of $cells cells of NASLib's sample (proxies of bash scripts/nb101_peer_proxies.sh), every statistic on the other 80%; target: that sample's val_accuracy (duplicates averaged). Command: bash scripts/nb101_peer_report.sh." >/dev/null
.venv/bin/gradsign ensemble results/nb201/proxies/validation_cifar10.csv --rule "$out/ensemble_peer/ensemble.json" \
  --report results/nb201/proxies/transfer_nb101_peer_rule_validation --notes "NAS-Bench-201 CIFAR-10, the 1000 validation cells of results/nb201/proxies/validation_cifar10.csv (bash scripts/nb201_proxies.sh): the rule fitted on NAS-Bench-101 labels (results/nb101/ensemble_peer), unchanged, using no NAS-Bench-201 label. Command: bash scripts/nb101_peer_report.sh." >/dev/null
echo "reports on $cells cells written to $out/{peer_validation,label_free_peer,label_free_consensus_peer,transfer_cifar10_rule_peer,ensemble_peer}"
echo "and its fitted rule on NAS-Bench-201 to results/nb201/proxies/transfer_nb101_peer_rule_validation"
