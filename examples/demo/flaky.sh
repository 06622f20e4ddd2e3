#!/bin/sh
# Works in steps of a second, forever; each step has one chance in eight of crashing.
step=1
while :; do
    roll=$(od -An -N1 -tu1 /dev/urandom | tr -d ' ')
    if [ $((roll % 8)) = 0 ]; then
        echo "crashed at step $step" >&2
        exit 1
    fi
    echo "step $step done"
    step=$((step + 1))
    sleep 1
done
