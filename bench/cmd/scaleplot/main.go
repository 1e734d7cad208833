// Command scaleplot draws the measured scale curve of `fedmesh sim` runs
// as a PNG with the standard library only: one panel of times, one of
// costs per control plane, one of traffic per control plane, each on a
// logarithmic axis against the number of clusters.
//
//	go run ./bench/cmd/scaleplot -o bench/scale/scale.png bench/scale/n*.json
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"sort"
	"strings"

	"github.com/fedmesh/fedmesh/internal/sim"
)

type series struct {
	name  string
	color color.RGBA
	y     func(*sim.Result) float64
}

type panel struct {
	title  string
	series []series
}

var (
	white = color.RGBA{255, 255, 255, 255}
	black = color.RGBA{0, 0, 0, 255}
	grey  = color.RGBA{210, 210, 210, 255}
	// A palette that stays apart for the color blind (Okabe-Ito).
	palette = []color.RGBA{
		{0, 114, 178, 255}, {213, 94, 0, 255}, {0, 158, 115, 255},
		{204, 121, 167, 255}, {230, 159, 0, 255}, {86, 180, 233, 255},
	}
)

func panels() []panel {
	return []panel{
		{"TIMES (SECONDS)", []series{
			{"PROPAGATION P50", palette[0], func(r *sim.Result) float64 { return float64(r.Propagation.P50) }},
			{"PROPAGATION P99", palette[1], func(r *sim.Result) float64 { return float64(r.Propagation.P99) }},
			{"MEMBERSHIP CONVERGENCE (MAX)", palette[2], func(r *sim.Result) float64 { return float64(r.Membership.Max) }},
			{"CATALOG SYNC (MAX)", palette[3], func(r *sim.Result) float64 { return float64(r.Sync.Max) }},
			{"FENCING (MAX)", palette[4], func(r *sim.Result) float64 { return float64(r.Fencing.Max) }},
		}},
		{"PER CONTROL PLANE", []series{
			{"RSS MIB (SYNCED)", palette[0], func(r *sim.Result) float64 { return float64(r.PerControlPlane.RSS) / (1 << 20) }},
			{"CPU MILLICORES AT REST", palette[1], func(r *sim.Result) float64 { return 1000 * r.PerControlPlane.CPURest }},
			{"CPU MILLICORES IN CHURN", palette[2], func(r *sim.Result) float64 { return 1000 * r.PerControlPlane.CPUChurn }},
			{"XDS PLAN PER VIEW MS", palette[3], func(r *sim.Result) float64 { return 1000 * float64(r.PerControlPlane.Plan) }},
			{"SIDECAR XDS BUILD MS", palette[4], func(r *sim.Result) float64 { return 1000 * float64(r.PerControlPlane.SidecarBuild) }},
			{"CPU SECONDS TO SYNC", palette[5], func(r *sim.Result) float64 { return float64(r.PerControlPlane.CPUSync) }},
		}},
		{"TRAFFIC PER CONTROL PLANE", []series{
			{"GOSSIP SENT B/S AT REST", palette[0], func(r *sim.Result) float64 { return r.PerControlPlane.GossipRest }},
			{"CATALOG SERVED KB AT SYNC", palette[1], func(r *sim.Result) float64 { return r.PerControlPlane.CatalogSync / 1000 }},
			{"CATALOG SERVED B/S AT REST", palette[2], func(r *sim.Result) float64 { return r.PerControlPlane.CatalogRest }},
			{"CATALOG SERVED B PER CHANGE", palette[3], func(r *sim.Result) float64 { return r.PerControlPlane.CatalogPerChange }},
		}},
	}
}

func main() {
	out := flag.String("o", "scale.png", "PNG file to write")
	title := flag.String("title", "FEDMESH SIM: S=100 SERVICES PER CLUSTER", "the plot's title")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: scaleplot [-o FILE] RESULT.json...")
		os.Exit(2)
	}
	var rs []*sim.Result
	for _, f := range flag.Args() {
		b, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, "error:", err)
			os.Exit(1)
		}
		var r sim.Result
		if err := json.Unmarshal(b, &r); err != nil {
			fmt.Fprintf(os.Stderr, "error: %s: %v\n", f, err)
			os.Exit(1)
		}
		rs = append(rs, &r)
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].Clusters < rs[j].Clusters })
	img := draw(rs, strings.ToUpper(*title))
	f, err := os.Create(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	if err := png.Encode(f, img); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	if err := f.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

const (
	width   = 900
	panelH  = 330
	top     = 40
	left    = 90
	plotW   = 480
	plotH   = 250
	legendX = left + plotW + 20
)

func draw(rs []*sim.Result, title string) *image.RGBA {
	ps := panels()
	img := image.NewRGBA(image.Rect(0, 0, width, top+len(ps)*panelH))
	fill(img, img.Bounds(), white)
	text(img, left, 12, title, black, 2)
	// The x axis: clusters, logarithmic from the decade below the
	// smallest run to the one above the largest.
	xs := make([]float64, len(rs))
	for i, r := range rs {
		xs[i] = float64(r.Clusters)
	}
	xlo, xhi := decades(xs)
	for k, p := range ps {
		y0 := top + k*panelH + 20
		text(img, left, y0-16, p.title, black, 2)
		var all []float64
		for _, s := range p.series {
			for _, r := range rs {
				if v := s.y(r); v > 0 {
					all = append(all, v)
				}
			}
		}
		ylo, yhi := decades(all)
		px := func(x float64) int {
			return left + int(float64(plotW)*(math.Log10(x)-math.Log10(xlo))/(math.Log10(xhi)-math.Log10(xlo)))
		}
		py := func(y float64) int {
			return y0 + plotH - int(float64(plotH)*(math.Log10(y)-math.Log10(ylo))/(math.Log10(yhi)-math.Log10(ylo)))
		}
		// Grid and ticks at 1, 2 and 5 of each decade.
		for d := ylo; d < yhi*1.01; d *= 10 {
			for _, m := range []float64{1, 2, 5} {
				v := d * m
				if v > yhi*1.01 {
					break
				}
				hline(img, left, left+plotW, py(v), grey)
				text(img, left-8-textWidth(num(v), 1), py(v)-3, num(v), black, 1)
			}
		}
		for d := xlo; d < xhi*1.01; d *= 10 {
			for _, m := range []float64{1, 2, 5} {
				v := d * m
				if v > xhi*1.01 {
					break
				}
				vline(img, px(v), y0, y0+plotH, grey)
				text(img, px(v)-textWidth(num(v), 1)/2, y0+plotH+6, num(v), black, 1)
			}
		}
		text(img, left+plotW/2-textWidth("CLUSTERS", 1)/2, y0+plotH+18, "CLUSTERS", black, 1)
		rect(img, left, y0, left+plotW, y0+plotH, black)
		for j, s := range p.series {
			prevX, prevY := -1, -1
			for _, r := range rs {
				v := s.y(r)
				if v <= 0 {
					prevX = -1
					continue
				}
				x, y := px(float64(r.Clusters)), py(v)
				if prevX >= 0 {
					line(img, prevX, prevY, x, y, s.color)
				}
				fill(img, image.Rect(x-3, y-3, x+4, y+4), s.color)
				prevX, prevY = x, y
			}
			ly := y0 + 10 + j*18
			fill(img, image.Rect(legendX, ly, legendX+12, ly+8), s.color)
			text(img, legendX+18, ly, s.name, black, 1)
		}
	}
	return img
}

// decades returns the powers of ten just below the smallest and just
// above the largest of vs.
func decades(vs []float64) (float64, float64) {
	if len(vs) == 0 {
		return 1, 10
	}
	lo, hi := vs[0], vs[0]
	for _, v := range vs {
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	l := math.Pow(10, math.Floor(math.Log10(lo)))
	h := math.Pow(10, math.Ceil(math.Log10(hi)))
	if h <= l {
		h = l * 10
	}
	return l, h
}

func num(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%gK", v/1e3)
	}
	return fmt.Sprintf("%g", v)
}

func fill(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	r = r.Intersect(img.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.SetRGBA(x, y, c)
		}
	}
}

func hline(img *image.RGBA, x0, x1, y int, c color.RGBA) {
	fill(img, image.Rect(x0, y, x1+1, y+1), c)
}

func vline(img *image.RGBA, x, y0, y1 int, c color.RGBA) {
	fill(img, image.Rect(x, y0, x+1, y1+1), c)
}

func rect(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA) {
	hline(img, x0, x1, y0, c)
	hline(img, x0, x1, y1, c)
	vline(img, x0, y0, y1, c)
	vline(img, x1, y0, y1, c)
}

// line draws a two-pixel line from (x0, y0) to (x1, y1).
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA) {
	steps := max(abs(x1-x0), abs(y1-y0), 1)
	for i := 0; i <= steps; i++ {
		x := x0 + (x1-x0)*i/steps
		y := y0 + (y1-y0)*i/steps
		fill(img, image.Rect(x, y, x+2, y+2), c)
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func textWidth(s string, scale int) int { return len([]rune(s)) * 6 * scale }

// text writes s with its top left corner at (x, y); characters the
// font lacks are left blank.
func text(img *image.RGBA, x, y int, s string, c color.RGBA, scale int) {
	for i, r := range strings.ToUpper(s) {
		if r == 'X' && i > 0 && s[i-1] >= '0' && s[i-1] <= '9' {
			r = 'x'
		}
		g, ok := glyphs[r]
		if !ok {
			continue
		}
		for row, bits := range g {
			for col, b := range bits {
				if b == '#' {
					px := x + (i*6+col)*scale
					py := y + row*scale
					fill(img, image.Rect(px, py, px+scale, py+scale), c)
				}
			}
		}
	}
}
