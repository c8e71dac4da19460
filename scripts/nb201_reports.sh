#!/usr/bin/env bash
# The evaluation reports of results/nb201/ from the GradSign tables (seconds; no scoring): CIFAR-10 over all 15625
# networks (with the analysis of the 0.77 bar appended) and over the uniform sample of 1000, CIFAR-100 and the
# ImageNet16-120 stand-in over the same 1000. Usage: bash scripts/nb201_reports.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=results/nb201
truth=${GRADSIGN_DATA:-../shared/data}/nb201
eval_=(.venv/bin/gradsign eval)
uniform=(--archs sample:1000 --sample-seed 0)
protocol="N = 128 real CIFAR-10 training images (the first 128 of \`cifar10_train4000.npz\`, official data_batch_1 order), NAS-Bench-201's CIFAR-10 normalisation, one fixed batch for all networks, PyTorch-default initialisation from seed 42, per-sample BatchNorm statistics"

scored=$(($(wc -l < "$out/gradsign_cifar10.csv") - 1))
if [ "$scored" -ge 15625 ]; then
  "${eval_[@]}" "$out/gradsign_cifar10.csv" --truth "$truth/nb201_cifar10.csv" \
    --target c10valid_test_200ep --target c10_test_200ep --report "$out/report_cifar10_all" \
    --title "GradSign on NAS-Bench-201, CIFAR-10, all 15625 networks" \
    --notes "Protocol (the paper's): $protocol. Commands: \`bash scripts/nb201_tables.sh\` (the table), \`bash scripts/nb201_reports.sh\` (this report). How much the correlation moves with the seed, the image batch and augmentation: results/nb201/protocol/summary_1000.md, and the analysis at the end of this report." \
    --appendix "$out/analysis_cifar10.md"
fi
"${eval_[@]}" "$out/gradsign_cifar10.csv" "${uniform[@]}" --truth "$truth/nb201_cifar10.csv" \
  --target c10valid_test_200ep --target c10_test_200ep --report "$out/report_cifar10" \
  --title "GradSign on NAS-Bench-201, CIFAR-10 (uniform sample of 1000 networks; all 15625: report_cifar10_all)" \
  --notes "Protocol (the paper's): $protocol. Networks: the uniform sample \`--archs sample:1000 --sample-seed 0\` (the same 1000 as the CIFAR-100 and ImageNet16 reports), taken from \`gradsign_cifar10.csv\`, which holds all 15625. Commands: \`bash scripts/nb201_tables.sh\`, \`bash scripts/nb201_reports.sh\`. The bar is Spearman >= 0.77 against c10valid_test_200ep over all 15625 (the official code reproduced by others: 0.77, Kendall 0.58): this sample gives 0.765, all 15625 give 0.752 (report_cifar10_all, with the analysis)."
"${eval_[@]}" "$out/gradsign_cifar100.csv" --truth "$truth/nb201_cifar100_imagenet16.csv" \
  --target c100_test_200ep --target c100_valid_200ep --report "$out/report_cifar100" \
  --title "GradSign on NAS-Bench-201, CIFAR-100 (1000 networks)" \
  --notes "Protocol: 1000 architectures drawn uniformly (\`--archs sample:1000 --sample-seed 0\`), each built as the NAS-Bench-201 TinyNetwork with 100 classes and PyTorch-default initialisation from seed 42, scored on N = 128 images of \`cifar100_test200.npz\` (the first 128 of 200 distinct CIFAR-100 *test* images: no CIFAR-100 training images are in the shared data), NAS-Bench-201's CIFAR-100 normalisation, one fixed batch for all networks. Commands: \`bash scripts/nb201_tables.sh\`, \`bash scripts/nb201_reports.sh\`. The paper reports Spearman 0.79 on all 15625 architectures for CIFAR-100."
"${eval_[@]}" "$out/gradsign_imagenet16.csv" --truth "$truth/nb201_cifar100_imagenet16.csv" \
  --target in16_test_200ep --target in16_valid_200ep --report "$out/report_imagenet16" \
  --title "GradSign on NAS-Bench-201, ImageNet16-120 stand-in (1000 networks)" \
  --notes "Protocol: 1000 architectures drawn uniformly (\`--archs sample:1000 --sample-seed 0\`, the same as for CIFAR-100), 120 classes, PyTorch-default initialisation from seed 42, N = 128 images of \`imagenet16_120_proxy.npz\`, NAS-Bench-201's ImageNet16 normalisation. **These pixels are not the official ImageNet16-120 files**: real ImageNet photos of the 120 classes box-downsampled to 16x16 (and Tiny-ImageNet images for 14 classes); GradSign is computed on them and correlated with the official ImageNet16-120 accuracies. Commands: \`bash scripts/nb201_tables.sh\`, \`bash scripts/nb201_reports.sh\`. The paper reports Spearman 0.78 on all 15625 architectures."
