package main

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestJudgeTrend checks the verdict on synthetic series sampled every 10 s for 5
// minutes (the second half of a 10-minute soak).
func TestJudgeTrend(t *testing.T) {
	const mib = 1 << 20
	rng := rand.New(rand.NewPCG(1, 2))
	series := func(level, perTenMin, noise float64) ([]float64, []float64) {
		var x, y []float64
		for i := range 30 {
			s := 300 + float64(i)*10
			x = append(x, s)
			y = append(y, level+perTenMin*(s-300)/600+noise*(rng.Float64()*2-1))
		}
		return x, y
	}
	heap1MiB := growthLimit{Amount: mib, bytes: true}
	heap5pc := growthLimit{Percent: 5, bytes: true}
	goro10 := growthLimit{Amount: 10}
	for _, tc := range []struct {
		name                    string
		level, perTenMin, noise float64
		limit                   growthLimit
		rising                  bool
	}{
		{"flat heap", 20 * mib, 0, 0, heap1MiB, false},
		{"flat heap with noise", 20 * mib, 0, 300 << 10, heap1MiB, false},
		{"heap rising 2 MiB per 10 min", 20 * mib, 2 * mib, 50 << 10, heap1MiB, true},
		{"heap rising steadily, no noise", 20 * mib, 1.5 * mib, 0, heap1MiB, true},
		{"heap rising below the limit", 20 * mib, 0.5 * mib, 20 << 10, heap1MiB, false},
		{"heap rising within a noise that hides it", 20 * mib, 2 * mib, 30 * mib, heap1MiB, false},
		{"heap falling", 20 * mib, -5 * mib, 50 << 10, heap1MiB, false},
		{"heap rising 3% of its level, limit 5%", 100 * mib, 3 * mib, 100 << 10, heap5pc, false},
		{"heap rising 8% of its level, limit 5%", 100 * mib, 8 * mib, 100 << 10, heap5pc, true},
		{"flat goroutines", 1040, 0, 0, goro10, false},
		{"goroutines with noise", 1040, 0, 30, goro10, false},
		{"goroutines at the limit", 1040, 10, 0, goro10, false},
		{"goroutines leaking", 1040, 60, 5, goro10, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x, y := series(tc.level, tc.perTenMin, tc.noise)
			tr := judgeTrend(x, y, &tc.limit)
			assert.Equal(t, tc.rising, tr.Rising, "%+v", tr)
			assert.Equal(t, 30, tr.Samples)
			if tc.noise == 0 {
				assert.InDelta(t, tc.perTenMin, tr.SlopePer10m, 1e-6*math.Max(1, math.Abs(tc.perTenMin)))
				assert.InDelta(t, 0, tr.ErrPer10m, 1e-6*math.Max(1, tc.level))
			}
			assert.InDelta(t, tc.limit.of(tr.Start), tr.LimitPer10m, 1e-9)
		})
	}

	t.Run("two samples are not enough", func(t *testing.T) {
		tr := judgeTrend([]float64{0, 10}, []float64{0, 100 * mib}, &heap1MiB)
		assert.False(t, tr.Rising)
		assert.Equal(t, -1.0, tr.ErrPer10m)
	})
	t.Run("no samples", func(t *testing.T) {
		tr := judgeTrend(nil, nil, &heap1MiB)
		assert.False(t, tr.Rising)
		assert.Zero(t, tr.Samples)
	})
	t.Run("not judged without a limit", func(t *testing.T) {
		x, y := series(100, 1000, 0)
		tr := judgeTrend(x, y, nil)
		assert.False(t, tr.Rising)
		assert.Equal(t, -1.0, tr.LimitPer10m)
		assert.InDelta(t, 1000, tr.SlopePer10m, 1e-6)
	})
}

func TestFitLine(t *testing.T) {
	f := fitLine([]float64{1, 2, 3, 4}, []float64{5, 7, 9, 11})
	assert.InDelta(t, 2, f.Slope, 1e-12)
	assert.InDelta(t, 3, f.Intercept, 1e-12)
	assert.InDelta(t, 0, f.SlopeErr, 1e-12)
	assert.InDelta(t, 13, f.at(5), 1e-12)

	// Residuals of ±1 around y = x: slope 1, standard error sqrt(SSR/(n-2)/Sxx).
	f = fitLine([]float64{0, 1, 2, 3}, []float64{1, 0, 3, 2})
	assert.InDelta(t, 0.6, f.Slope, 1e-12)
	assert.InDelta(t, math.Sqrt(3.2/2/5), f.SlopeErr, 1e-12)

	f = fitLine([]float64{7, 7, 7}, []float64{1, 2, 3}) // no spread in x
	assert.Zero(t, f.Slope)
	assert.InDelta(t, 2, f.Intercept, 1e-12)
}

func TestParseGrowthLimit(t *testing.T) {
	for _, tc := range []struct {
		in     string
		bytes  bool
		amount float64
		pc     float64
		str    string
	}{
		{"1MiB", true, 1 << 20, 0, "1.00 MiB"},
		{"512KiB", true, 512 << 10, 0, "512.0 KiB"},
		{"1.5 GiB", true, 1.5 * (1 << 30), 0, "1.50 GiB"},
		{"2MB", true, 2e6, 0, "1.91 MiB"},
		{"4096", true, 4096, 0, "4.0 KiB"},
		{"2%", true, 0, 2, "2%"},
		{"10", false, 10, 0, "10"},
		{"0.5%", false, 0, 0.5, "0.5%"},
	} {
		l, err := parseGrowthLimit(tc.in, tc.bytes)
		require.NoError(t, err, tc.in)
		assert.InDelta(t, tc.amount, l.Amount, 1e-9, tc.in)
		assert.InDelta(t, tc.pc, l.Percent, 1e-9, tc.in)
		assert.Equal(t, tc.str, l.String(), tc.in)
	}
	for _, in := range []string{"", "x", "-1MiB", "1TiB", "-2%", "%"} {
		_, err := parseGrowthLimit(in, true)
		assert.Error(t, err, in)
	}
	_, err := parseGrowthLimit("1MiB", false)
	assert.Error(t, err, "goroutines have no unit")
}
