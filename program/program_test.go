package program_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tally-loyalty/tally/program"
)

func TestLoad_BuiltInExampleWhenNoPath(t *testing.T) {
	p, err := program.Load("")
	if err != nil {
		t.Fatal(err)
	}
	if p.Name == "" || p.DefaultLocale != "en" || p.Location.String() != "UTC" || p.Source != "built-in example" {
		t.Fatalf("example = %+v", p)
	}
}

func TestParse_ReadsProgramSection(t *testing.T) {
	p, err := program.Parse([]byte(`
[program]
name = "Acme Rewards"
default_locale = "pt-br"
timezone = "Europe/Berlin"
`), "acme.toml")
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "Acme Rewards" || p.DefaultLocale != "pt-BR" || p.Location.String() != "Europe/Berlin" {
		t.Fatalf("programme = %+v", p)
	}
}

func TestParse_ErrorsNameTheKey(t *testing.T) {
	cases := map[string]struct{ toml, want string }{
		"unknown key":        {"[program]\nnme = \"x\"", `"program.nme"`},
		"unknown section":    {"[shop]\nurl = \"x\"", `"shop"`},
		"planned section":    {"[seasons]\ncadence = \"monthly\"", "[seasons] is not implemented yet"},
		"planned expiry":     {"[expiry]\npolicy = \"none\"", "[expiry] is not implemented yet"},
		"bad telegram admin": {"[moderation]\ntelegram_admin_ids = [-4]", "moderation.telegram_admin_ids[0]"},
		"bad discord role":   {"[moderation]\ndiscord_role_ids = [\"mods\"]", "moderation.discord_role_ids[0]"},
		"role as number":     {"[moderation]\ndiscord_role_ids = [1400]", "discord_role_ids"},
		"bad timezone":       {"[program]\ntimezone = \"Mars/Olympus\"", "program.timezone"},
		"empty timezone":     {"[program]\ntimezone = \"\"", "program.timezone"},
		"local timezone":     {"[program]\ntimezone = \"Local\"", "program.timezone"},
		"bad locale":         {"[program]\ndefault_locale = \"xx\"", "program.default_locale"},
		"unsupported locale": {"[program]\ndefault_locale = \"nl\"", "program.default_locale"},
		"empty name":         {"[program]\nname = \"  \"", "program.name"},
		"wrong type":         {"[program]\nname = 5", "name"},
		"syntax":             {"[program\nname = 5", "line 2"},
	}
	for name, c := range cases {
		_, err := program.Parse([]byte(c.toml), "p.toml")
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "p.toml") {
			t.Errorf("%s: error %v, want one naming %s and the file", name, err, c.want)
		}
	}
}

func TestLoad_MissingFile(t *testing.T) {
	_, err := program.Load(filepath.Join(t.TempDir(), "nope.toml"))
	if err == nil || !strings.Contains(err.Error(), "nope.toml") {
		t.Fatalf("error %v, want one naming the file", err)
	}
	path := filepath.Join(t.TempDir(), "ok.toml")
	os.WriteFile(path, []byte("[program]\nname = \"Mine\"\n"), 0o600)
	p, err := program.Load(path)
	if err != nil || p.Name != "Mine" || p.Source != path {
		t.Fatalf("Load = %+v, %v", p, err)
	}
}

func TestParse_Moderators(t *testing.T) {
	p, err := program.Parse([]byte("[moderation]\ntelegram_admin_ids = [111, 222]\ndiscord_role_ids = [\"1400000000000000001\"]\n"), "m.toml")
	if err != nil {
		t.Fatal(err)
	}
	if !p.IsModerator("telegram", "111", nil) || p.IsModerator("telegram", "333", nil) ||
		!p.IsModerator("discord", "5", []string{"9", "1400000000000000001"}) || p.IsModerator("discord", "5", []string{"9"}) ||
		p.IsModerator("discord", "111", nil) {
		t.Fatalf("moderators = %+v %+v", p.TelegramAdmins, p.DiscordRoles)
	}
}

func TestParse_ReviewKeys(t *testing.T) {
	p, err := program.Parse([]byte(`
[moderation]
telegram_review_chat = -1001234567890
discord_review_channel = "1300000000000000001"
daily_award_limit = 5000
`), "m.toml")
	if err != nil {
		t.Fatal(err)
	}
	if p.TelegramReviewChat != "-1001234567890" || p.DiscordReviewChannel != "1300000000000000001" || p.DailyAwardLimit != 5000 {
		t.Fatalf("review = %q %q %d", p.TelegramReviewChat, p.DiscordReviewChannel, p.DailyAwardLimit)
	}
	p, err = program.Parse(nil, "empty.toml")
	if err != nil {
		t.Fatal(err)
	}
	if p.TelegramReviewChat != "" || p.DiscordReviewChannel != "" || p.DailyAwardLimit != 0 || len(p.Tasks) != 0 {
		t.Fatalf("defaults = %+v", p)
	}
}

// task is a valid [[tasks]] entry with extra lines added.
func task(key string, extra ...string) string {
	return "[[tasks]]\nkey = \"" + key + "\"\npoints = 10\ntitle = { en = \"Do it\" }\n" + strings.Join(extra, "\n") + "\n"
}

func TestParse_TaskAndReviewErrorsNameTheKey(t *testing.T) {
	cases := map[string]struct{ toml, want string }{
		"review chat 0":           {"[moderation]\ntelegram_review_chat = 0", "moderation.telegram_review_chat: 0 is not"},
		"review chat as string":   {"[moderation]\ntelegram_review_chat = \"-100\"", "moderation.telegram_review_chat"},
		"review channel not id":   {"[moderation]\ndiscord_review_channel = \"reviews\"", `moderation.discord_review_channel: "reviews"`},
		"review channel empty":    {"[moderation]\ndiscord_review_channel = \"\"", "moderation.discord_review_channel"},
		"review channel number":   {"[moderation]\ndiscord_review_channel = 1300", `in quotes, as a string: "1300"`},
		"award limit 0":           {"[moderation]\ndaily_award_limit = 0", "moderation.daily_award_limit: 0 is not"},
		"award limit negative":    {"[moderation]\ndaily_award_limit = -5", "moderation.daily_award_limit: -5"},
		"award limit too big":     {"[moderation]\ndaily_award_limit = 9007199254740992", "moderation.daily_award_limit"},
		"award limit float":       {"[moderation]\ndaily_award_limit = 1.5", "moderation.daily_award_limit: 1.5"},
		"moderation unknown key":  {"[moderation]\nreview_chat = 5", `"moderation.review_chat"`},
		"tasks as table":          {"[tasks]\nkey = \"a\"", "tasks"},
		"key missing":             {"[[tasks]]\npoints = 5", "tasks[0].key: missing"},
		"key upper case":          {task("Check-In"), `tasks[0].key: "Check-In" is not a task key`},
		"key with space":          {task("check in"), `tasks[0].key: "check in"`},
		"key starts with dash":    {task("-x"), `tasks[0].key: "-x"`},
		"key too long":            {task(strings.Repeat("a", 33)), "tasks[0].key"},
		"key a number":            {"[[tasks]]\nkey = 5", "tasks[0].key: 5 is not a task key"},
		"duplicate key":           {task("a") + task("b") + task("a"), `tasks[2].key: "a" is already the key of tasks[0]`},
		"points missing":          {"[[tasks]]\nkey = \"a\"\ntitle = { en = \"A\" }", `tasks[0] ("a").points: missing`},
		"points 0":                {strings.Replace(task("a"), "points = 10", "points = 0", 1), `tasks[0] ("a").points: 0 is not`},
		"points negative":         {strings.Replace(task("a"), "points = 10", "points = -3", 1), `tasks[0] ("a").points: -3 is not`},
		"points too big":          {strings.Replace(task("a"), "points = 10", "points = 9007199254740992", 1), `tasks[0] ("a").points: 9007199254740992 is not`},
		"points string":           {strings.Replace(task("a"), "points = 10", `points = "10"`, 1), `tasks[0] ("a").points: "10" is not`},
		"bad recurrence":          {task("a") + task("b", `recurrence = "hourly"`), `tasks[1] ("b").recurrence: "hourly" is not one of once, daily, weekly, monthly`},
		"recurrence wrong case":   {task("a", `recurrence = "Daily"`), `tasks[0] ("a").recurrence: "Daily"`},
		"bad approval":            {task("a", `approval = "moderator"`), `tasks[0] ("a").approval: "moderator" is not one of auto, manual`},
		"bad evidence":            {task("a", `evidence = "photo"`), `tasks[0] ("a").evidence: "photo" is not one of none, url, text`},
		"title missing":           {"[[tasks]]\nkey = \"a\"\npoints = 5", `tasks[0] ("a").title: missing`},
		"title a string":          {"[[tasks]]\nkey = \"a\"\npoints = 5\ntitle = \"Do it\"", `tasks[0] ("a").title: "Do it" is not a table`},
		"title no default locale": {"[[tasks]]\nkey = \"a\"\npoints = 5\ntitle = { de = \"Mach es\" }", `tasks[0] ("a").title: has no text in the programme's default language "en"`},
		"title default locale de": {"[program]\ndefault_locale = \"de\"\n" + task("a"), `tasks[0] ("a").title: has no text in the programme's default language "de"`},
		"title unsupported":       {task("a", `title.nl = "Doe het"`), `tasks[0] ("a").title.nl: "nl" is not one of the supported languages`},
		"title same language":     {"[[tasks]]\nkey = \"a\"\npoints = 5\ntitle = { en = \"A\", pt-br = \"B\", pt-BR = \"C\" }", `tasks[0] ("a").title: "pt-BR" and "pt-br" are the same language`},
		"title too long":          {"[[tasks]]\nkey = \"a\"\npoints = 5\ntitle = { en = \"" + strings.Repeat("x", 101) + "\" }", `tasks[0] ("a").title.en: must be 1 to 100 characters, not 101`},
		"title empty":             {"[[tasks]]\nkey = \"a\"\npoints = 5\ntitle = { en = \"  \" }", `tasks[0] ("a").title.en: must be 1 to 100`},
		"title two lines":         {"[[tasks]]\nkey = \"a\"\npoints = 5\ntitle = { en = \"Do\\nit\" }", `tasks[0] ("a").title.en: must be one line`},
		"title not text":          {"[[tasks]]\nkey = \"a\"\npoints = 5\ntitle = { en = 5 }", `tasks[0] ("a").title.en: 5 is not text`},
		"description too long":    {task("a", `description = { en = "`+strings.Repeat("é", 501)+`" }`), `tasks[0] ("a").description.en: must be 1 to 500 characters, not 501`},
		"description unsupported": {task("a", `description = { en = "x", xx = "y" }`), `tasks[0] ("a").description.xx`},
		"description no default":  {task("a", `description = { de = "x" }`), `tasks[0] ("a").description: has no text in the programme's default language`},
		"limit 0":                 {task("a", "limit = 0"), `tasks[0] ("a").limit: 0 is not`},
		"limit negative":          {task("a", "limit = -1"), `tasks[0] ("a").limit: -1 is not`},
		"starts datetime":         {task("a", "starts = 2026-12-01T10:00:00"), `tasks[0] ("a").starts: 2026-12-01T10:00:00 has a time of day or an offset; give a date such as 2026-12-01`},
		"starts with offset":      {task("a", "starts = 2026-12-01T00:00:00Z"), `tasks[0] ("a").starts: 2026-12-01T00:00:00Z has a time of day or an offset`},
		"ends time of day":        {task("a", "ends = 23:59:00"), `tasks[0] ("a").ends: 23:59:00 has a time of day`},
		"starts string datetime":  {task("a", `starts = "2026-12-01 10:00"`), `tasks[0] ("a").starts: "2026-12-01 10:00" is not a date; give a date such as 2026-12-01`},
		"starts bad string date":  {task("a", `starts = "2026-02-30"`), `tasks[0] ("a").starts: "2026-02-30" is not a date`},
		"starts a number":         {task("a", "starts = 20261201"), `tasks[0] ("a").starts: 20261201 is not a date`},
		"ends before starts":      {task("a", "starts = 2026-12-01", "ends = 2026-11-30"), `tasks[0] ("a").ends: 2026-11-30 is before starts (2026-12-01)`},
		"unknown task key":        {task("a") + task("b", "pionts = 5"), `unknown key "tasks[1].pionts" (known in a task: key, points`},
		"unknown task sub-table":  {task("a", "[tasks.extra]\nx = 1"), `unknown key "tasks[0].extra"`},
	}
	for name, c := range cases {
		_, err := program.Parse([]byte(c.toml), "p.toml")
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "p.toml: ") {
			t.Errorf("%s: error %v, want one naming %s and the file", name, err, c.want)
		}
	}
}

func TestParse_TaskDefaultsAndValues(t *testing.T) {
	p, err := program.Parse([]byte(`
[program]
default_locale = "pt-br"

[[tasks]]
key = "plain"
points = 5
title = { PT-br = " Faça isso ", EN = "Do it" }

[[tasks]]
key = "full"
points = 9007199254740991
recurrence = "monthly"
approval = "manual"
evidence = "url"
limit = 3
title = { pt-BR = "Tudo" }
description = { pt-BR = "Linha um\nlinha dois", de = "Alles" }
`), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Tasks) != 2 || p.Tasks[0].Key != "plain" || p.Tasks[1].Key != "full" {
		t.Fatalf("tasks = %+v", p.Tasks)
	}
	plain := p.Tasks[0]
	if plain.Points != 5 || plain.Recurrence != program.Once || plain.Approval != program.ApprovalAuto ||
		plain.Evidence != program.EvidenceNone || plain.Limit != 0 || plain.Starts != nil || plain.Ends != nil || plain.Description != nil {
		t.Errorf("defaults = %+v", plain)
	}
	if plain.Title["pt-BR"] != "Faça isso" || plain.Title["en"] != "Do it" || len(plain.Title) != 2 {
		t.Errorf("title = %q, want keys normalised and text trimmed", plain.Title)
	}
	full := p.Tasks[1]
	if full.Points != 1<<53-1 || full.Recurrence != program.Monthly || full.Approval != program.ApprovalManual ||
		full.Evidence != program.EvidenceURL || full.Limit != 3 || full.Description["pt-BR"] != "Linha um\nlinha dois" || full.Description["de"] != "Alles" {
		t.Errorf("full = %+v", full)
	}
}

func TestParse_TaskDatesAreDaysInTheProgrammeTimezone(t *testing.T) {
	// Berlin moves from UTC+1 to UTC+2 on 2026-03-29, so that day is 23 hours.
	for _, dates := range []string{"starts = 2026-03-29\nends = 2026-03-29", "starts = \"2026-03-29\"\nends = \"2026-03-29\""} {
		p, err := program.Parse([]byte("[program]\ntimezone = \"Europe/Berlin\"\n"+task("spring", dates)), "t.toml")
		if err != nil {
			t.Fatal(err)
		}
		tk := p.Tasks[0]
		wantStart := time.Date(2026, 3, 28, 23, 0, 0, 0, time.UTC)
		wantEnd := time.Date(2026, 3, 29, 22, 0, 0, 0, time.UTC)
		if tk.Starts == nil || !tk.Starts.Equal(wantStart) || tk.Ends == nil || !tk.Ends.Equal(wantEnd) {
			t.Fatalf("%s: starts %v ends %v, want %v and %v", dates, tk.Starts, tk.Ends, wantStart, wantEnd)
		}
		for _, c := range []struct {
			at   time.Time
			open bool
		}{
			{wantStart.Add(-time.Nanosecond), false},
			{wantStart, true},
			{wantEnd.Add(-time.Nanosecond), true},
			{wantEnd, false},
		} {
			if tk.Open(c.at) != c.open {
				t.Errorf("Open(%v) = %v, want %v", c.at, !c.open, c.open)
			}
		}
	}
}

func TestTask_OpenWithOneSideOrNone(t *testing.T) {
	p, err := program.Parse([]byte(task("always")+task("from", "starts = 2026-12-01")+task("until", "ends = 2026-12-31")), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	always, from, until := p.Tasks[0], p.Tasks[1], p.Tasks[2]
	dec1 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	jan1 := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	if !always.Open(time.Time{}) || !always.Open(jan1) {
		t.Error("a task without dates is always open")
	}
	if from.Open(dec1.Add(-time.Second)) || !from.Open(dec1) || !from.Open(jan1.AddDate(10, 0, 0)) {
		t.Error("starts: open from the start of the day on")
	}
	if !until.Open(time.Time{}) || !until.Open(jan1.Add(-time.Second)) || until.Open(jan1) {
		t.Error("ends: open through the end of the day")
	}
	// One day, the same date on both sides, is allowed.
	if _, err := program.Parse([]byte(task("one-day", "starts = 2026-12-01", "ends = 2026-12-01")), "t.toml"); err != nil {
		t.Errorf("one-day task: %v", err)
	}
}

func TestTask_TextInFallsBack(t *testing.T) {
	p, err := program.Parse([]byte(`
[program]
default_locale = "de"

[[tasks]]
key = "a"
points = 1
title = { de = "Teilen", en = "Share", pt-BR = "Compartilhar" }
description = { de = "Beschreibung" }

[[tasks]]
key = "b"
points = 1
title = { de = "Nur Deutsch" }
`), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	a, b := &p.Tasks[0], &p.Tasks[1]
	for _, c := range []struct{ locale, fallback, want string }{
		{"en", "de", "Share"},
		{"pt-BR", "en", "Compartilhar"},
		{"pt-br", "en", "Compartilhar"},
		{"fr", "en", "Share"},
		{"fr", "de", "Teilen"},
		{"fr", "", "Teilen"},
		{"fr", "ja", "Teilen"},
	} {
		if got := a.TitleIn(c.locale, c.fallback); got != c.want {
			t.Errorf("TitleIn(%q, %q) = %q, want %q", c.locale, c.fallback, got, c.want)
		}
	}
	if got := a.DescriptionIn("en", "de"); got != "Beschreibung" {
		t.Errorf("DescriptionIn = %q", got)
	}
	if got := b.DescriptionIn("en", "de"); got != "" {
		t.Errorf("DescriptionIn without description = %q", got)
	}
	if got := b.TitleIn("en", "en"); got != "Nur Deutsch" {
		t.Errorf("TitleIn falls back to the programme default: %q", got)
	}
}

func TestProgram_TaskLooksUpKeyCaseInsensitively(t *testing.T) {
	p, err := program.Parse([]byte(task("instagram-share")+task("intro")), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"instagram-share", "Instagram-Share", "INTRO"} {
		if tk, ok := p.Task(k); !ok || !strings.EqualFold(tk.Key, k) {
			t.Errorf("Task(%q) = %+v, %v", k, tk, ok)
		}
	}
	if tk, ok := p.Task("outro"); ok || tk != nil {
		t.Errorf("Task(outro) = %+v, %v", tk, ok)
	}
	tk, _ := p.Task("intro")
	if tk != &p.Tasks[1] {
		t.Error("Task returns a pointer into Tasks")
	}
}

func TestExample_HasTasks(t *testing.T) {
	p := program.Example()
	want := map[string]struct {
		points                         int64
		recurrence, approval, evidence string
	}{
		"check-in":        {10, program.Daily, program.ApprovalAuto, program.EvidenceNone},
		"instagram-share": {200, program.Weekly, program.ApprovalManual, program.EvidenceURL},
		"intro":           {50, program.Once, program.ApprovalAuto, program.EvidenceText},
		"helper":          {300, program.Monthly, program.ApprovalManual, program.EvidenceText},
	}
	if len(p.Tasks) != len(want) {
		t.Fatalf("example has %d tasks, want %d", len(p.Tasks), len(want))
	}
	for key, w := range want {
		tk, ok := p.Task(key)
		if !ok {
			t.Fatalf("example has no task %q", key)
		}
		if tk.Points != w.points || tk.Recurrence != w.recurrence || tk.Approval != w.approval || tk.Evidence != w.evidence {
			t.Errorf("%s = %+v", key, tk)
		}
		for _, l := range []string{"en", "de", "fr", "es"} {
			if tk.Title[l] == "" {
				t.Errorf("%s has no %s title", key, l)
			}
		}
		if !tk.Open(time.Now()) {
			t.Errorf("%s is not open now; the demo needs it open", key)
		}
	}
	share, _ := p.Task("instagram-share")
	if share.DescriptionIn("de", "en") == "" || share.DescriptionIn("ja", "en") != share.Description["en"] {
		t.Errorf("instagram-share description = %q", share.Description)
	}
	if helper, _ := p.Task("helper"); helper.Limit < 1 {
		t.Error("the helper task shows a limit")
	}
	if p.TelegramReviewChat != "" || p.DiscordReviewChannel != "" || p.DailyAwardLimit != 0 {
		t.Error("the example sets no review chats or award limit")
	}
}
