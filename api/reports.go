package api

import (
	"encoding/csv"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tally-loyalty/tally/ledger"
)

// WithTimezone sets the programme's timezone, in which reports cut months
// (UTC otherwise).
func WithTimezone(loc *time.Location) Option { return func(s *Server) { s.loc = loc } }

// reportPoints is a report total. Totals sum many members' points, so they may
// pass 2^53−1, the largest integer every JSON client reads exactly: up to it a
// total is a JSON number, beyond it a string of its decimal digits.
type reportPoints int64

func (p reportPoints) MarshalJSON() ([]byte, error) {
	s := strconv.FormatInt(int64(p), 10)
	if p > ledger.MaxPoints || p < -ledger.MaxPoints {
		return []byte(`"` + s + `"`), nil
	}
	return []byte(s), nil
}

type expiryJSON struct {
	Month  *string      `json:"month"` // null: never expires
	Points reportPoints `json:"points"`
}

type outstandingJSON struct {
	Total    reportPoints `json:"total"`
	Pending  reportPoints `json:"pending"`
	ByExpiry []expiryJSON `json:"by_expiry"`
	Overdue  reportPoints `json:"overdue"`
}

type activityJSON struct {
	Month       string       `json:"month"`
	Issued      reportPoints `json:"issued"`
	Spent       reportPoints `json:"spent"`
	Expired     reportPoints `json:"expired"`
	Adjustments reportPoints `json:"adjustments"`
	Partners    reportPoints `json:"partners"`
}

type liabilityJSON struct {
	Timezone    string          `json:"timezone"`
	AsOf        time.Time       `json:"as_of"`
	Outstanding outstandingJSON `json:"outstanding"`
	Activity    []activityJSON  `json:"activity"`
}

// liability serves GET /v1/reports/liability: JSON, or CSV when the client
// prefers text/csv (README.md, Admin API, describes both).
func (s *Server) liability(w http.ResponseWriter, r *http.Request) error {
	loc := s.loc
	if loc == nil {
		loc = time.UTC
	}
	q := r.URL.Query()
	rep, err := s.ledger.Liability(r.Context(), loc, q.Get("from"), q.Get("to"))
	if err != nil {
		return err
	}
	w.Header().Add("Vary", "Accept")
	if prefersCSV(r.Header.Values("Accept")) {
		writeLiabilityCSV(w, rep, loc)
		return nil
	}
	out := liabilityJSON{Timezone: rep.Timezone, AsOf: rep.AsOf.UTC(), Activity: make([]activityJSON, len(rep.Activity)),
		Outstanding: outstandingJSON{Total: reportPoints(rep.Outstanding), Pending: reportPoints(rep.Pending),
			Overdue: reportPoints(rep.Overdue), ByExpiry: make([]expiryJSON, len(rep.ByExpiry))}}
	for i, b := range rep.ByExpiry {
		out.Outstanding.ByExpiry[i] = expiryJSON{Points: reportPoints(b.Points)}
		if b.Month != "" {
			out.Outstanding.ByExpiry[i].Month = &b.Month
		}
	}
	for i, a := range rep.Activity {
		out.Activity[i] = activityJSON{Month: a.Month, Issued: reportPoints(a.Issued), Spent: reportPoints(a.Spent),
			Expired: reportPoints(a.Expired), Adjustments: reportPoints(a.Adjustments), Partners: reportPoints(a.Partners)}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// writeLiabilityCSV writes the report as three sections, each a header row
// and its rows, separated by an empty line:
//
//	as_of,timezone
//	2026-05-01T10:00:00Z,Europe/Berlin
//
//	expiry,points
//	overdue,10
//	2027-01,300
//	never,1190
//	total,1500
//	pending,0
//
//	month,issued,spent,expired,adjustments,partners
//	2026-11,500,0,0,0,0
//
// total is overdue plus every month plus never; pending is apart from it.
func writeLiabilityCSV(w http.ResponseWriter, rep ledger.Liability, loc *time.Location) {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="tally-liability-`+rep.AsOf.In(loc).Format("2006-01-02")+`.csv"`)
	w.WriteHeader(http.StatusOK)
	c := csv.NewWriter(w)
	c.UseCRLF = true // RFC 4180, as spreadsheets write it
	n := func(v int64) string { return strconv.FormatInt(v, 10) }
	c.Write([]string{"as_of", "timezone"})
	c.Write([]string{rep.AsOf.UTC().Format(time.RFC3339Nano), rep.Timezone})
	c.Write(nil)
	c.Write([]string{"expiry", "points"})
	c.Write([]string{"overdue", n(rep.Overdue)})
	for _, b := range rep.ByExpiry {
		month := b.Month
		if month == "" {
			month = "never"
		}
		c.Write([]string{month, n(b.Points)})
	}
	c.Write([]string{"total", n(rep.Outstanding)})
	c.Write([]string{"pending", n(rep.Pending)})
	c.Write(nil)
	c.Write([]string{"month", "issued", "spent", "expired", "adjustments", "partners"})
	for _, a := range rep.Activity {
		c.Write([]string{a.Month, n(a.Issued), n(a.Spent), n(a.Expired), n(a.Adjustments), n(a.Partners)})
	}
	c.Flush()
}

// prefersCSV reports whether the Accept header ranks text/csv above JSON
// (JSON when they tie or neither is named; */* names neither).
func prefersCSV(accept []string) bool {
	var csvQ, jsonQ float64
	for _, h := range accept {
		for _, part := range strings.Split(h, ",") {
			typ, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			q := 1.0
			if v, ok := params["q"]; ok {
				if q, err = strconv.ParseFloat(v, 64); err != nil {
					continue
				}
			}
			switch typ {
			case "text/csv":
				csvQ = max(csvQ, q)
			case "application/json", "application/*":
				jsonQ = max(jsonQ, q)
			}
		}
	}
	return csvQ > 0 && csvQ > jsonQ
}
