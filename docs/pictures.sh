#!/usr/bin/env bash
# Remake every picture the README shows, with the installed stylecascade, from the repository
# root: bash docs/pictures.sh (about 20 minutes on 2 CPU cores). benchmarks/peers.py makes
# docs/peers.png.
set -euo pipefail
cd "$(dirname "$0")/.."
E=examples
S=$(mktemp -d)
trap 'rm -rf "$S"' EXIT
mkdir -p "$S/inspect" "$S/layers" "$S/blend"   # inspect -o needs an existing folder

# The draft render at the top, its stages and its loss curve.
stylecascade render $E/tubingen.jpg -s $E/starry_night.jpg --seed 0 --overwrite \
    -o docs/tubingen-starry_night.png --save-stages "$S/stages"
rm -rf docs/stages && mkdir docs/stages && cp "$S"/stages/*.png docs/stages/
stylecascade inspect --stages docs/stages --manifest docs/tubingen-starry_night.json -o "$S/inspect"
cp "$S"/inspect/stages.png "$S"/inspect/losses.png docs/inspect/

# Layer reconstructions (Gatys et al. 2016, Fig. 1).
stylecascade inspect $E/tubingen.jpg -s $E/starry_night.jpg --size 128 -o "$S/layers"
cp "$S"/layers/layers.png docs/inspect/

# Styles alone, blended, and the color modes (draft --size 256).
R=docs/blend/renders
rm -rf $R && mkdir -p $R
stylecascade render $E/tubingen.jpg -s $E/starry_night.jpg --size 256 -o $R/1-starry_night.png
stylecascade render $E/tubingen.jpg -s $E/the_scream.jpg --size 256 -o $R/2-the_scream.png
stylecascade render $E/tubingen.jpg -s $E/starry_night.jpg -s $E/the_scream.jpg --size 256 \
    -o $R/3-blend.png
n=4
for mode in luminance histogram luminance-only; do
    stylecascade render $E/tubingen.jpg -s $E/starry_night.jpg -s $E/the_scream.jpg --size 256 \
        --color $mode -o $R/$n-blend-$mode.png
    n=$((n + 1))
done
rm $R/*.json
stylecascade inspect --stages $R -o "$S/blend"
cp "$S"/blend/stages.png docs/blend/grid.png
