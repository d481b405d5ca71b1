package program

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// How often a member may claim a task; days, weeks (from Monday) and months
// turn over in the programme timezone.
const (
	Once    = "once"
	Daily   = "daily"
	Weekly  = "weekly"
	Monthly = "monthly"
)

// Who approves a claim: Tally at once, or a moderator.
const (
	ApprovalAuto   = "auto"
	ApprovalManual = "manual"
)

// What a member hands in with a claim.
const (
	EvidenceNone = "none"
	EvidenceURL  = "url"
	EvidenceText = "text"
)

// Task is something members do for points, from a [[tasks]] entry.
type Task struct {
	// Key names the task in commands and records; unique in the programme.
	Key    string
	Points int64
	// Recurrence is Once, Daily, Weekly or Monthly.
	Recurrence string
	// Approval is ApprovalAuto or ApprovalManual.
	Approval string
	// Evidence is EvidenceNone, EvidenceURL or EvidenceText.
	Evidence string
	// Title and Description map a supported locale to text; Title always
	// has the programme's default locale, Description has it or is empty.
	Title       map[string]string
	Description map[string]string
	// Limit is how many claims may be approved across all members; 0 means
	// no limit.
	Limit int64
	// Starts is the first instant the task takes claims and Ends the first
	// instant it no longer does (the start of the day after the date in the
	// file); nil means open on that side.
	Starts *time.Time
	Ends   *time.Time

	defaultLocale string
}

// TitleIn returns the task's title in locale, else in fallback, else in the
// programme's default locale.
func (t *Task) TitleIn(locale, fallback string) string {
	return t.textIn(t.Title, locale, fallback)
}

// DescriptionIn returns the task's description in locale, else in fallback,
// else in the programme's default locale; "" when it has none.
func (t *Task) DescriptionIn(locale, fallback string) string {
	return t.textIn(t.Description, locale, fallback)
}

func (t *Task) textIn(texts map[string]string, locale, fallback string) string {
	return textIn(texts, locale, fallback, t.defaultLocale)
}

// textIn returns the text in locale, else in fallback, else in
// defaultLocale, comparing tags case-insensitively; "" when texts is empty.
func textIn(texts map[string]string, locale, fallback, defaultLocale string) string {
	for _, tag := range []string{locale, fallback, defaultLocale} {
		if s, ok := texts[tag]; ok && tag != "" {
			return s
		}
		for l, s := range texts {
			if tag != "" && strings.EqualFold(l, tag) {
				return s
			}
		}
	}
	// Only for a value built in code without its default locale.
	if len(texts) > 0 {
		return texts[slices.Min(slices.Collect(maps.Keys(texts)))]
	}
	return ""
}

// Open reports whether the task takes claims at now.
func (t *Task) Open(now time.Time) bool {
	return (t.Starts == nil || !now.Before(*t.Starts)) && (t.Ends == nil || now.Before(*t.Ends))
}

// Task returns the task with key, compared case-insensitively.
func (p *Program) Task(key string) (*Task, bool) {
	for i := range p.Tasks {
		if strings.EqualFold(p.Tasks[i].Key, key) {
			return &p.Tasks[i], true
		}
	}
	return nil, false
}

// fileTask mirrors a [[tasks]] entry. Every value is decoded as any so that
// its checks name the task by index and say what to write.
type fileTask struct {
	Key         any `toml:"key"`
	Points      any `toml:"points"`
	Recurrence  any `toml:"recurrence"`
	Approval    any `toml:"approval"`
	Evidence    any `toml:"evidence"`
	Title       any `toml:"title"`
	Description any `toml:"description"`
	Limit       any `toml:"limit"`
	Starts      any `toml:"starts"`
	Ends        any `toml:"ends"`
}

// taskKeys are fileTask's keys, for checks and errors.
var taskKeys = []string{"key", "points", "recurrence", "approval", "evidence", "title", "description", "limit", "starts", "ends"}

var taskKey = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// parseTasks checks the [[tasks]] entries; dates are days in loc.
func parseTasks(entries []fileTask, defaultLocale string, loc *time.Location) ([]Task, error) {
	tasks := make([]Task, 0, len(entries))
	seen := map[string]int{}
	for i, e := range entries {
		t, err := parseTask(i, e, defaultLocale, loc)
		if err != nil {
			return nil, err
		}
		if j, ok := seen[t.Key]; ok {
			return nil, fmt.Errorf("tasks[%d].key: %q is already the key of tasks[%d]; task keys must be unique", i, t.Key, j)
		}
		seen[t.Key] = i
		tasks = append(tasks, t)
	}
	return tasks, nil
}

func parseTask(i int, e fileTask, defaultLocale string, loc *time.Location) (Task, error) {
	name := fmt.Sprintf("tasks[%d]", i)
	key, ok := e.Key.(string)
	switch {
	case e.Key == nil:
		return Task{}, fmt.Errorf("%s.key: missing; every task needs a key such as \"instagram-share\"", name)
	case !ok || !taskKey.MatchString(key):
		return Task{}, fmt.Errorf("%s.key: %s is not a task key: 1 to 32 lower-case letters, digits, - and _, starting with a letter or digit", name, show(e.Key))
	}
	name = fmt.Sprintf("tasks[%d] (%q)", i, key)
	t := Task{Key: key, defaultLocale: defaultLocale}

	points, ok := e.Points.(int64)
	switch {
	case e.Points == nil:
		return Task{}, fmt.Errorf("%s.points: missing; say how many points the task is worth", name)
	case !ok || points < 1 || points > maxPoints:
		return Task{}, fmt.Errorf("%s.points: %s is not a number of points from 1 to %d", name, show(e.Points), int64(maxPoints))
	}
	t.Points = points

	var err error
	if t.Recurrence, err = oneOf(name+".recurrence", e.Recurrence, Once, Daily, Weekly, Monthly); err != nil {
		return Task{}, err
	}
	if t.Approval, err = oneOf(name+".approval", e.Approval, ApprovalAuto, ApprovalManual); err != nil {
		return Task{}, err
	}
	if t.Evidence, err = oneOf(name+".evidence", e.Evidence, EvidenceNone, EvidenceURL, EvidenceText); err != nil {
		return Task{}, err
	}

	if e.Title == nil {
		return Task{}, fmt.Errorf("%s.title: missing; give the title by language, such as title = { %s = \"Share a photo\" }", name, defaultLocale)
	}
	if t.Title, err = texts(name+".title", e.Title, defaultLocale, 100, true); err != nil {
		return Task{}, err
	}
	if e.Description != nil {
		if t.Description, err = texts(name+".description", e.Description, defaultLocale, 500, false); err != nil {
			return Task{}, err
		}
	}

	if e.Limit != nil {
		n, ok := e.Limit.(int64)
		if !ok || n < 1 {
			return Task{}, fmt.Errorf("%s.limit: %s is not a number of claims of 1 or more (leave the key out for no limit)", name, show(e.Limit))
		}
		t.Limit = n
	}

	var startDay, endDay string
	if t.Starts, startDay, err = day(name+".starts", e.Starts, loc, 0); err != nil {
		return Task{}, err
	}
	if t.Ends, endDay, err = day(name+".ends", e.Ends, loc, 1); err != nil {
		return Task{}, err
	}
	if t.Starts != nil && t.Ends != nil && !t.Ends.After(*t.Starts) {
		return Task{}, fmt.Errorf("%s.ends: %s is before starts (%s); the task is open from the start of starts to the end of ends", name, endDay, startDay)
	}
	return t, nil
}

// oneOf checks that v, when given, is one of options; the first is the default.
func oneOf(name string, v any, options ...string) (string, error) {
	if v == nil {
		return options[0], nil
	}
	if s, ok := v.(string); ok && slices.Contains(options, s) {
		return s, nil
	}
	return "", fmt.Errorf("%s: %s is not one of %s", name, show(v), strings.Join(options, ", "))
}

// texts checks a table of locale = text: supported locales (named in any
// case), one of them the programme default, each text 1 to maxLen
// characters once trimmed, and on one line when oneLine.
func texts(name string, v any, defaultLocale string, maxLen int, oneLine bool) (map[string]string, error) {
	table, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: %s is not a table of language = text; write it such as { %s = \"…\" }", name, show(v), defaultLocale)
	}
	out := make(map[string]string, len(table))
	as := map[string]string{} // supported tag -> key as written
	for _, k := range slices.Sorted(maps.Keys(table)) {
		loc, err := supportedLocale(k)
		if err != nil {
			return nil, fmt.Errorf("%s.%s: %w", name, k, err)
		}
		if prev, ok := as[loc]; ok {
			return nil, fmt.Errorf("%s: %q and %q are the same language", name, prev, k)
		}
		as[loc] = k
		s, ok := table[k].(string)
		if !ok {
			return nil, fmt.Errorf("%s.%s: %s is not text", name, k, show(table[k]))
		}
		s = strings.TrimSpace(s)
		if n := utf8.RuneCountInString(s); n == 0 || n > maxLen {
			return nil, fmt.Errorf("%s.%s: must be 1 to %d characters, not %d", name, k, maxLen, n)
		}
		if oneLine && strings.ContainsAny(s, "\r\n") {
			return nil, fmt.Errorf("%s.%s: must be one line", name, k)
		}
		out[loc] = s
	}
	if _, ok := out[defaultLocale]; !ok {
		return nil, fmt.Errorf("%s: has no text in the programme's default language %q (program.default_locale)", name, defaultLocale)
	}
	return out, nil
}

// day checks that v, when given, is a date (a TOML local date or a
// "YYYY-MM-DD" string) and returns the start of that day in loc, moved on by
// plusDays, with the date as written for errors.
func day(name string, v any, loc *time.Location, plusDays int) (*time.Time, string, error) {
	var d time.Time
	switch v := v.(type) {
	case nil:
		return nil, "", nil
	case string:
		var err error
		if d, err = time.Parse(time.DateOnly, v); err != nil {
			return nil, "", fmt.Errorf("%s: %q is not a date; give a date such as 2026-12-01", name, v)
		}
	case time.Time:
		// The TOML decoder marks a local date (no time, no offset) by this
		// zone name; a datetime or time of day has another.
		if zone := v.Location().String(); zone != "date-local" {
			layout := map[string]string{"datetime-local": "2006-01-02T15:04:05", "time-local": time.TimeOnly}[zone]
			if layout == "" {
				layout = time.RFC3339
			}
			return nil, "", fmt.Errorf("%s: %s has a time of day or an offset; give a date such as 2026-12-01 (the task turns over at midnight in program.timezone)", name, v.Format(layout))
		}
		d = v
	default:
		return nil, "", fmt.Errorf("%s: %s is not a date; give a date such as 2026-12-01", name, show(v))
	}
	t := time.Date(d.Year(), d.Month(), d.Day()+plusDays, 0, 0, 0, 0, loc)
	return &t, d.Format(time.DateOnly), nil
}
