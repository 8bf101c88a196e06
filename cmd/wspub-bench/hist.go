package main

import (
	"math"
	"math/bits"
)

// Histograms are log-linear, like HDR histograms: values below 128 have a bucket each,
// and every power of two above is split into 128 buckets, so a bucket is at most 1/128
// (0.8 %) of its values wide.
const (
	subBits    = 7
	subBuckets = 1 << subBits
)

// bucketOf returns the index of the bucket holding v.
func bucketOf(v uint64) int {
	if v < subBuckets {
		return int(v)
	}
	shift := bits.Len64(v) - subBits - 1
	return (shift+1)<<subBits + int(v>>shift) - subBuckets
}

// bucketHigh returns the largest value bucket i holds.
func bucketHigh(i int) uint64 {
	if i < subBuckets {
		return uint64(i)
	}
	shift := i>>subBits - 1
	mant := uint64(i&(subBuckets-1)) + subBuckets
	return (mant+1)<<shift - 1
}

// clientHist is one client's histogram of latencies in microseconds. It grows one octave
// at a time as values need: a client that records nothing allocates nothing, and one
// that sees latencies up to a second holds ~1 800 buckets of 4 bytes.
type clientHist struct {
	counts []uint32
	n      uint64
	max    uint64
}

func (h *clientHist) record(v uint64) {
	i := bucketOf(v)
	if i >= len(h.counts) {
		n := (i/subBuckets + 1) * subBuckets
		grown := make([]uint32, n)
		copy(grown, h.counts)
		h.counts = grown
	}
	h.counts[i]++
	h.n++
	if v > h.max {
		h.max = v
	}
}

// hist is the merged histogram of many clients.
type hist struct {
	counts []uint64
	n      uint64
	max    uint64
}

func (h *hist) merge(c *clientHist) {
	if len(c.counts) > len(h.counts) {
		grown := make([]uint64, len(c.counts))
		copy(grown, h.counts)
		h.counts = grown
	}
	for i, n := range c.counts {
		h.counts[i] += uint64(n)
	}
	h.n += c.n
	h.max = max(h.max, c.max)
}

// quantile returns the value below or at which a fraction q of the values lie: the upper
// bound of its bucket (at most 0.8 % above the true value), never above the maximum.
func (h *hist) quantile(q float64) uint64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, n := range h.counts {
		seen += n
		if seen >= rank {
			return min(bucketHigh(i), h.max)
		}
	}
	return h.max
}
