package program_test

import (
	"os"
	"path/filepath"
	"slices"
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

func TestParse_SeasonsErrorsNameTheKey(t *testing.T) {
	const s = "[seasons]\n"
	cases := map[string]struct{ toml, want string }{
		"bad cadence":               {s + `cadence = "daily"`, `seasons.cadence: "daily" is not one of weekly, monthly, quarterly, none`},
		"cadence wrong case":        {s + `cadence = "Monthly"`, `seasons.cadence: "Monthly" is not one of`},
		"cadence a number":          {s + `cadence = 30`, `seasons.cadence: 30 is not one of`},
		"bad join":                  {s + `join = "everyone"`, `seasons.join: "everyone" is not one of opt_in, auto`},
		"join a bool":               {s + `join = true`, `seasons.join: true is not one of opt_in, auto`},
		"prizes a number":           {s + `prizes = 500`, `seasons.prizes: 500 is not a list of points; write it such as [500, 300, 100]`},
		"prizes a string":           {s + `prizes = "500"`, `seasons.prizes: "500" is not a list`},
		"prizes a table":            {s + `prizes = { first = 500 }`, `seasons.prizes: a table is not a list`},
		"prize 0":                   {s + `prizes = [500, 300, 0]`, `seasons.prizes[2]: 0 is not a number of points from 1 to 9007199254740991`},
		"prize negative":            {s + `prizes = [-1]`, `seasons.prizes[0]: -1 is not a number of points`},
		"prize too big":             {s + `prizes = [9007199254740992]`, `seasons.prizes[0]: 9007199254740992 is not`},
		"prize a string":            {s + `prizes = [500, "300"]`, `seasons.prizes[1]: "300" is not`},
		"prize a float":             {s + `prizes = [1.5]`, `seasons.prizes[0]: 1.5 is not`},
		"prize a list":              {s + `prizes = [[500]]`, `seasons.prizes[0]: a list is not`},
		"prizes as tables":          {s + "[[seasons.prizes]]\npoints = 5", `seasons.prizes[0]: a table is not`},
		"too many prizes":           {s + "prizes = [" + strings.Repeat("1, ", program.MaxPrizes) + "1]", `seasons.prizes: has 101 prizes; a season pays at most 100 ranks`},
		"name a string":             {s + `name = "League {n}"`, `seasons.name: "League {n}" is not a table of language = text`},
		"name unsupported":          {s + `name = { en = "League", nl = "Liga" }`, `seasons.name.nl: "nl" is not one of the supported languages`},
		"name no default locale":    {s + `name = { de = "Liga" }`, `seasons.name: has no text in the programme's default language "en"`},
		"name default locale de":    {"[program]\ndefault_locale = \"de\"\n" + s + `name = { en = "League" }`, `seasons.name: has no text in the programme's default language "de"`},
		"name same language":        {s + `name = { en = "A", zh-cn = "B", zh-CN = "C" }`, `seasons.name: "zh-CN" and "zh-cn" are the same language`},
		"name too long":             {s + `name = { en = "` + strings.Repeat("x", 101) + `" }`, `seasons.name.en: must be 1 to 100 characters, not 101`},
		"name empty":                {s + `name = { en = "  " }`, `seasons.name.en: must be 1 to 100 characters, not 0`},
		"name two lines":            {s + `name = { en = "League\n{n}" }`, `seasons.name.en: must be one line`},
		"name not text":             {s + `name = { en = 5 }`, `seasons.name.en: 5 is not text`},
		"announce chat 0":           {s + `telegram_announce_chat = 0`, `seasons.telegram_announce_chat: 0 is not a Telegram chat id`},
		"announce chat as string":   {s + `telegram_announce_chat = "-100"`, `seasons.telegram_announce_chat: "-100" is not a Telegram chat id; write the id as a number without quotes`},
		"announce chat a table":     {s + `telegram_announce_chat = { id = 5 }`, `seasons.telegram_announce_chat: a table is not`},
		"announce channel not id":   {s + `discord_announce_channel = "news"`, `seasons.discord_announce_channel: "news" is not a Discord channel id`},
		"announce channel empty":    {s + `discord_announce_channel = ""`, `seasons.discord_announce_channel: "" is not`},
		"announce channel a number": {s + `discord_announce_channel = 1300`, `seasons.discord_announce_channel: write the channel id in quotes, as a string: "1300"`},
		"unknown key":               {s + `cadense = "weekly"`, `unknown key "seasons.cadense" (known in [seasons]: cadence, join, prizes, name, telegram_announce_chat, discord_announce_channel)`},
		"unknown sub-table":         {"[seasons.rewards]\nfirst = 5", `unknown key "seasons.rewards" (known in [seasons]: cadence`},
		"seasons not a table":       {"seasons = \"monthly\"", `"seasons"`},
		"seasons as array":          {"[[seasons]]\ncadence = \"monthly\"", `"seasons"`},
	}
	for name, c := range cases {
		_, err := program.Parse([]byte(c.toml), "p.toml")
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "p.toml: ") {
			t.Errorf("%s: error %v, want one naming %s and the file", name, err, c.want)
		}
	}
}

func TestParse_SeasonsDefaults(t *testing.T) {
	p, err := program.Parse([]byte("[program]\nname = \"x\"\n"), "p.toml")
	if err != nil {
		t.Fatal(err)
	}
	if p.Seasons != nil {
		t.Fatalf("no [seasons] section: Seasons = %+v, want nil", p.Seasons)
	}
	p, err = program.Parse([]byte("[seasons]\n"), "p.toml")
	if err != nil {
		t.Fatal(err)
	}
	s := p.Seasons
	if s == nil || s.Cadence != program.CadenceMonthly || s.Join != program.JoinOptIn || len(s.Prizes) != 0 ||
		s.Name != nil || s.TelegramAnnounceChat != "" || s.DiscordAnnounceChannel != "" {
		t.Fatalf("empty [seasons] = %+v", s)
	}
	if got := s.NameIn("en", "en", 3); got != "" {
		t.Errorf("NameIn without a name = %q, want \"\"", got)
	}
}

func TestParse_SeasonsValues(t *testing.T) {
	p, err := program.Parse([]byte(`
[program]
default_locale = "de"

[seasons]
cadence = "quarterly"
join = "auto"
prizes = [9007199254740991, 1]
name = { DE = " Liga {n} ", pt-br = "Liga {n}" }
telegram_announce_chat = -1001234567890
discord_announce_channel = "1300000000000000002"
`), "s.toml")
	if err != nil {
		t.Fatal(err)
	}
	s := p.Seasons
	if s.Cadence != program.CadenceQuarterly || s.Join != program.JoinAuto || len(s.Prizes) != 2 || s.Prizes[0] != 1<<53-1 || s.Prizes[1] != 1 ||
		s.TelegramAnnounceChat != "-1001234567890" || s.DiscordAnnounceChannel != "1300000000000000002" {
		t.Errorf("seasons = %+v", s)
	}
	if len(s.Name) != 2 || s.Name["de"] != "Liga {n}" || s.Name["pt-BR"] != "Liga {n}" {
		t.Errorf("name = %q, want keys normalised and text trimmed", s.Name)
	}
	for _, c := range []string{program.CadenceWeekly, program.CadenceMonthly, program.CadenceQuarterly, program.CadenceNone} {
		p, err := program.Parse([]byte("[seasons]\ncadence = \""+c+"\"\nprizes = []\n"), "s.toml")
		if err != nil || p.Seasons.Cadence != c || len(p.Seasons.Prizes) != 0 {
			t.Errorf("cadence %s: %+v, %v", c, p, err)
		}
	}
	prizes := "[seasons]\nprizes = [" + strings.TrimSuffix(strings.Repeat("1, ", program.MaxPrizes), ", ") + "]\n"
	if p, err := program.Parse([]byte(prizes), "s.toml"); err != nil || len(p.Seasons.Prizes) != program.MaxPrizes {
		t.Errorf("%d prizes: %v", program.MaxPrizes, err)
	}
}

func TestSeasons_NameInReplacesNumberAndFallsBack(t *testing.T) {
	p, err := program.Parse([]byte(`
[program]
default_locale = "de"

[seasons]
name = { de = "Liga {n}", en = "League {n} ({n})", fr = "Ligue" }
`), "s.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		locale, fallback string
		n                int64
		want             string
	}{
		{"en", "de", 7, "League 7 (7)"},
		{"EN", "de", 12, "League 12 (12)"},
		{"de", "en", 1, "Liga 1"},
		{"fr", "en", 3, "Ligue"},
		{"ja", "en", 3, "League 3 (3)"},
		{"ja", "ko", 3, "Liga 3"},
		{"", "", 40, "Liga 40"},
	} {
		if got := p.Seasons.NameIn(c.locale, c.fallback, c.n); got != c.want {
			t.Errorf("NameIn(%q, %q, %d) = %q, want %q", c.locale, c.fallback, c.n, got, c.want)
		}
	}
}

func TestSeasons_BoundsInTheProgrammeTimezone(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	local := func(y int, m time.Month, d, h, min int) time.Time { return time.Date(y, m, d, h, min, 0, 0, berlin) }
	utc := func(y int, m time.Month, d, h int) time.Time { return time.Date(y, m, d, h, 0, 0, 0, time.UTC) }
	cases := []struct {
		name       string
		cadence    string
		at         time.Time
		start, end time.Time
	}{
		{"weekly, on a Monday", program.CadenceWeekly, local(2026, 11, 23, 10, 0), local(2026, 11, 23, 0, 0), local(2026, 11, 30, 0, 0)},
		{"weekly, Monday midnight", program.CadenceWeekly, local(2026, 11, 23, 0, 0), local(2026, 11, 23, 0, 0), local(2026, 11, 30, 0, 0)},
		{"weekly, Sunday night", program.CadenceWeekly, local(2026, 11, 29, 23, 59), local(2026, 11, 23, 0, 0), local(2026, 11, 30, 0, 0)},
		// Sunday 23:30 UTC is already Monday in Berlin.
		{"weekly, by the local day", program.CadenceWeekly, utc(2026, 11, 22, 23).Add(30 * time.Minute), local(2026, 11, 23, 0, 0), local(2026, 11, 30, 0, 0)},
		// Berlin moves from UTC+2 to UTC+1 on 2026-10-25: the week is 169 hours.
		{"weekly, DST change", program.CadenceWeekly, local(2026, 10, 22, 12, 0), utc(2026, 10, 18, 22), utc(2026, 10, 25, 23)},
		{"monthly, on the 1st", program.CadenceMonthly, local(2026, 11, 1, 0, 0), local(2026, 11, 1, 0, 0), local(2026, 12, 1, 0, 0)},
		{"monthly, December", program.CadenceMonthly, local(2026, 12, 31, 23, 30), local(2026, 12, 1, 0, 0), local(2027, 1, 1, 0, 0)},
		// Berlin moves from UTC+1 to UTC+2 on 2026-03-29.
		{"monthly, DST change", program.CadenceMonthly, local(2026, 3, 15, 12, 0), utc(2026, 2, 28, 23), utc(2026, 3, 31, 22)},
		{"quarterly, New Year's Eve", program.CadenceQuarterly, local(2026, 12, 31, 23, 30), local(2026, 10, 1, 0, 0), local(2027, 1, 1, 0, 0)},
		{"quarterly, Q1", program.CadenceQuarterly, local(2026, 2, 14, 9, 0), local(2026, 1, 1, 0, 0), local(2026, 4, 1, 0, 0)},
		{"quarterly, Q2 starts", program.CadenceQuarterly, local(2026, 4, 1, 0, 0), local(2026, 4, 1, 0, 0), local(2026, 7, 1, 0, 0)},
		{"quarterly, Q3", program.CadenceQuarterly, local(2026, 9, 30, 23, 59), local(2026, 7, 1, 0, 0), local(2026, 10, 1, 0, 0)},
		{"none", program.CadenceNone, local(2026, 11, 23, 10, 17), local(2026, 11, 23, 10, 17), time.Time{}},
	}
	for _, c := range cases {
		s := &program.Seasons{Cadence: c.cadence}
		start, end := s.Bounds(c.at, berlin)
		if !start.Equal(c.start) || !end.Equal(c.end) {
			t.Errorf("%s: Bounds(%v) = [%v, %v), want [%v, %v)", c.name, c.at, start, end, c.start, c.end)
		}
		if c.cadence == program.CadenceNone {
			if !end.IsZero() {
				t.Errorf("%s: end = %v, want the zero time", c.name, end)
			}
			continue
		}
		if start.Location() != berlin || end.Location() != berlin {
			t.Errorf("%s: bounds in %v and %v, want Europe/Berlin", c.name, start.Location(), end.Location())
		}
		if c.at.Before(start) || !c.at.Before(end) {
			t.Errorf("%s: %v is not in [%v, %v)", c.name, c.at, start, end)
		}
		// The next period starts where this one ends.
		if next, _ := s.Bounds(end, berlin); !next.Equal(end) {
			t.Errorf("%s: the period after starts at %v, want %v", c.name, next, end)
		}
	}
}

func TestExample_HasMonthlySeasons(t *testing.T) {
	s := program.Example().Seasons
	if s == nil {
		t.Fatal("the example has no seasons")
	}
	if s.Cadence != program.CadenceMonthly || s.Join != program.JoinOptIn || len(s.Prizes) != 3 ||
		s.Prizes[0] != 500 || s.Prizes[1] != 300 || s.Prizes[2] != 100 {
		t.Errorf("example seasons = %+v", s)
	}
	if s.NameIn("en", "en", 4) != "Tally Example League 4" || s.NameIn("de", "en", 4) != "Tally Example Liga 4" || s.NameIn("ja", "en", 4) != "Tally Example League 4" {
		t.Errorf("example season names = %q", s.Name)
	}
	if s.TelegramAnnounceChat != "" || s.DiscordAnnounceChannel != "" {
		t.Error("the example sets no announce chats")
	}
}

func TestParseDuration_Forms(t *testing.T) {
	cases := []struct {
		in   string
		want program.Duration
		err  string // part of the error; "" when valid
	}{
		{"90s", program.Duration{Fixed: 90 * time.Second}, ""},
		{"30m", program.Duration{Fixed: 30 * time.Minute}, ""},
		{"12h", program.Duration{Fixed: 12 * time.Hour}, ""},
		{"7d", program.Duration{Fixed: 168 * time.Hour}, ""},
		{"18mo", program.Duration{Months: 18}, ""},
		{"1mo", program.Duration{Months: 1}, ""},
		{"07d", program.Duration{Fixed: 168 * time.Hour}, ""},
		{"106751d", program.Duration{Fixed: 106751 * 24 * time.Hour}, ""},
		{"3504mo", program.Duration{Months: 3504}, ""},
		{"0d", program.Duration{}, `"0d" is not a duration: it must be longer than 0`},
		{"0mo", program.Duration{}, `"0mo" is not a duration: it must be longer than 0`},
		{"-5m", program.Duration{}, `"-5m" is not a duration (use e.g. 90s, 30m, 12h, 7d, 18mo)`},
		{"+5m", program.Duration{}, `"+5m" is not a duration`},
		{"1.5h", program.Duration{}, `"1.5h" is not a duration (use e.g.`},
		{"5", program.Duration{}, `"5" is not a duration`},
		{"mo", program.Duration{}, `"mo" is not a duration`},
		{"12 mo", program.Duration{}, `"12 mo" is not a duration`},
		{" 12mo", program.Duration{}, `" 12mo" is not a duration`},
		{"12MO", program.Duration{}, `"12MO" is not a duration`},
		{"1y", program.Duration{}, `"1y" is not a duration (use e.g. 90s, 30m, 12h, 7d, 18mo; a year is 12mo, a week 7d)`},
		{"2w", program.Duration{}, `a week 7d`},
		{"1h30m", program.Duration{}, `"1h30m" is not a duration`},
		{"1500ms", program.Duration{}, `"1500ms" is not a duration`},
		{"", program.Duration{}, `"" is not a duration`},
		{"106752d", program.Duration{}, `"106752d" is too long a duration (at most about 292 years)`},
		{"3505mo", program.Duration{}, `"3505mo" is too long`},
		{"99999999999999999999s", program.Duration{}, `is too long`},
	}
	for _, c := range cases {
		got, err := program.ParseDuration(c.in)
		switch {
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("ParseDuration(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("ParseDuration(%q) = %+v, %v; want an error with %s", c.in, got, err, c.err)
		}
	}
}

func TestDuration_StringRoundTrips(t *testing.T) {
	for in, want := range map[string]string{
		"90s": "90s", "60s": "1m", "3600s": "1h", "30m": "30m", "1440m": "1d", "12h": "12h",
		"48h": "2d", "7d": "7d", "18mo": "18mo", "12mo": "12mo", "07d": "7d",
	} {
		d, err := program.ParseDuration(in)
		if err != nil {
			t.Fatalf("ParseDuration(%q): %v", in, err)
		}
		if d.String() != want {
			t.Errorf("ParseDuration(%q).String() = %q, want %q", in, d.String(), want)
		}
		if back, err := program.ParseDuration(d.String()); err != nil || back != d {
			t.Errorf("%q does not read back: %+v, %v", d.String(), back, err)
		}
	}
	for d, want := range map[program.Duration]string{
		{}:                                      "0s",
		{Fixed: 10 * time.Second}:               "10s",
		{Fixed: 61 * time.Minute}:               "61m",
		{Fixed: 25 * time.Hour}:                 "25h",
		{Fixed: 24*time.Hour + 30*time.Minute}:  "1470m",
		{Fixed: 2*time.Hour + 30*time.Second}:   "7230s",
		{Fixed: 100 * 24 * time.Hour}:           "100d",
		{Fixed: 1500 * time.Millisecond}:        "1.5s",
		{Fixed: 2*time.Hour + time.Millisecond}: "2h0m0.001s",
		{Fixed: -5 * time.Minute}:               "-5m",
		{Months: -2}:                            "-2mo",
		{Months: 1, Fixed: 7 * 24 * time.Hour}:  "1mo+7d",
	} {
		if got := d.String(); got != want {
			t.Errorf("%+v.String() = %q, want %q", d, got, want)
		}
	}
	if !(program.Duration{}).IsZero() || (program.Duration{Months: 1}).IsZero() || (program.Duration{Fixed: 1}).IsZero() {
		t.Error("IsZero")
	}
}

func TestDuration_AfterAndBeforeInTheProgrammeTimezone(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	local := func(y int, m time.Month, d, h int) time.Time { return time.Date(y, m, d, h, 0, 0, 0, berlin) }
	parse := func(s string) program.Duration {
		d, err := program.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	cases := []struct {
		name          string
		d             string
		from, after   time.Time
		before        time.Time // from minus d
		elapsedAfterH float64   // hours from from to after; 0: not checked
	}{
		// Berlin moves from UTC+1 to UTC+2 on 2026-03-29 and back on 2026-10-25.
		// Days are fixed 24-hour periods: 7d across the change is 168 hours
		// and lands an hour later on the wall clock.
		{"7d across spring DST", "7d", local(2026, 3, 25, 12), local(2026, 4, 1, 13), local(2026, 3, 18, 12), 168},
		{"7d back across spring DST", "7d", local(2026, 4, 1, 12), local(2026, 4, 8, 12), local(2026, 3, 25, 11), 168},
		{"1d on the autumn DST day", "1d", local(2026, 10, 24, 12), local(2026, 10, 25, 11), local(2026, 10, 23, 12), 24},
		// Months are calendar months in the programme timezone: the wall
		// clock stays, so a month across the change is 743 hours.
		{"1mo across spring DST", "1mo", local(2026, 3, 15, 12), local(2026, 4, 15, 12), local(2026, 2, 15, 12), 31*24 - 1},
		{"1mo across autumn DST", "1mo", local(2026, 10, 15, 12), local(2026, 11, 15, 12), local(2026, 9, 15, 12), 31*24 + 1},
		// A day past the end of a month is its last day: 31 January + 1mo is
		// 28 February (29 in a leap year), as the ledger counts.
		{"31 January + 1mo", "1mo", local(2026, 1, 31, 12), local(2026, 2, 28, 12), local(2025, 12, 31, 12), 28 * 24},
		{"31 January + 1mo, leap year", "1mo", local(2028, 1, 31, 12), local(2028, 2, 29, 12), local(2027, 12, 31, 12), 29 * 24},
		// 31 March - 1mo is 28 February: Before does not undo After.
		{"31 March - 1mo", "1mo", local(2026, 3, 31, 12), local(2026, 4, 30, 12), local(2026, 2, 28, 12), 30 * 24},
		{"18mo", "18mo", local(2026, 1, 15, 0), local(2027, 7, 15, 0), local(2024, 7, 15, 0), 0},
		{"90s", "90s", local(2026, 3, 29, 1), local(2026, 3, 29, 1).Add(90 * time.Second), local(2026, 3, 29, 1).Add(-90 * time.Second), 0.025},
	}
	for _, c := range cases {
		d := parse(c.d)
		got := d.After(c.from, berlin)
		if !got.Equal(c.after) {
			t.Errorf("%s: After(%v) = %v, want %v", c.name, c.from, got, c.after)
		}
		if got.Location() != berlin {
			t.Errorf("%s: After is in %v, want Europe/Berlin", c.name, got.Location())
		}
		if c.elapsedAfterH != 0 && got.Sub(c.from).Hours() != c.elapsedAfterH {
			t.Errorf("%s: After is %v later, want %vh", c.name, got.Sub(c.from), c.elapsedAfterH)
		}
		if b := d.Before(c.from, berlin); !b.Equal(c.before) {
			t.Errorf("%s: Before(%v) = %v, want %v", c.name, c.from, b, c.before)
		}
	}
	// Months are counted in the location given: 00:30 on 1 March in Berlin
	// is still 28 February in UTC.
	at := local(2026, 3, 1, 0).Add(30 * time.Minute)
	if got, want := parse("1mo").After(at, time.UTC), time.Date(2026, 3, 28, 23, 30, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("1mo in UTC = %v, want %v", got, want)
	}
	if got, want := parse("1mo").After(at, berlin), local(2026, 4, 1, 0).Add(30*time.Minute); !got.Equal(want) {
		t.Errorf("1mo in Berlin = %v, want %v", got, want)
	}
	if got := parse("1mo").After(at, nil); !got.Equal(parse("1mo").After(at, time.UTC)) || got.Location() != time.UTC {
		t.Errorf("a nil location is UTC: %v", got)
	}
}

func TestParse_ExpiryDefaults(t *testing.T) {
	for _, src := range []string{"", "[program]\nname = \"x\"\n", "[expiry]\n", "[expiry]\npolicy = \"none\"\n"} {
		p, err := program.Parse([]byte(src), "p.toml")
		if err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		e := p.Expiry
		if e.Policy != program.PolicyNone || !e.After.IsZero() || e.Reminders != nil || e.SweepEvery != time.Hour {
			t.Errorf("%q: expiry = %+v, want policy none, sweep every 1h", src, e)
		}
	}
	if e := program.Example().Expiry; e.Policy != program.PolicyNone || !e.After.IsZero() {
		t.Errorf("the example expires points by policy: %+v; the demo must not", e)
	}
}

func TestParse_ExpiryValues(t *testing.T) {
	p, err := program.Parse([]byte(`
[expiry]
policy = "after_earn"
after = "12mo"
reminders = ["1d", "30d", "2h", "1mo", "7d"]
sweep_every = "5m"
`), "p.toml")
	if err != nil {
		t.Fatal(err)
	}
	e := p.Expiry
	want := []program.Duration{{Months: 1}, {Fixed: 30 * 24 * time.Hour}, {Fixed: 7 * 24 * time.Hour}, {Fixed: 24 * time.Hour}, {Fixed: 2 * time.Hour}}
	if e.Policy != program.PolicyAfterEarn || e.After != (program.Duration{Months: 12}) || e.SweepEvery != 5*time.Minute || !slices.Equal(e.Reminders, want) {
		t.Fatalf("expiry = %+v, want reminders longest first %v", e, want)
	}
	for _, c := range []struct {
		src   string
		check func(program.Expiry) bool
	}{
		{"policy = \"inactivity\"\nafter = \"90s\"\nreminders = [\"89s\"]", func(e program.Expiry) bool {
			return e.Policy == program.PolicyInactivity && e.After.Fixed == 90*time.Second && len(e.Reminders) == 1
		}},
		{"policy = \"after_earn\"\nafter = \"1200mo\"", func(e program.Expiry) bool { return e.After.Months == 1200 }},
		{"policy = \"after_earn\"\nafter = \"36524d\"", func(e program.Expiry) bool { return e.After.Fixed == 36524*24*time.Hour }},
		// 1mo from 1 January 2001 is 31 days.
		{"policy = \"after_earn\"\nafter = \"1mo\"\nreminders = [\"30d\"]", func(e program.Expiry) bool { return len(e.Reminders) == 1 }},
		// Reminders need no policy: an admin award's expires_at is reminded of.
		{"reminders = [\"7d\", \"30d\"]", func(e program.Expiry) bool {
			return e.Policy == program.PolicyNone && len(e.Reminders) == 2 && e.Reminders[0].Fixed == 30*24*time.Hour
		}},
		{"reminders = []", func(e program.Expiry) bool { return len(e.Reminders) == 0 }},
		{"sweep_every = \"10s\"", func(e program.Expiry) bool { return e.SweepEvery == 10*time.Second }},
		{"sweep_every = \"24h\"", func(e program.Expiry) bool { return e.SweepEvery == 24*time.Hour }},
		{"sweep_every = \"1d\"", func(e program.Expiry) bool { return e.SweepEvery == 24*time.Hour }},
		{"reminders = [\"1mo\", \"31d\"]", func(e program.Expiry) bool {
			return len(e.Reminders) == 2 && e.Reminders[0].Months == 1 && e.Reminders[1].Fixed == 31*24*time.Hour
		}},
		{"reminders = [\"31d\", \"1mo\"]", func(e program.Expiry) bool {
			return len(e.Reminders) == 2 && e.Reminders[0].Months == 1 && e.Reminders[1].Fixed == 31*24*time.Hour
		}},
		{"reminders = [\"1s\", \"2s\", \"3s\", \"4s\", \"5s\", \"6s\", \"7s\", \"8s\", \"9s\", \"10s\"]", func(e program.Expiry) bool {
			return len(e.Reminders) == 10 && e.Reminders[0].Fixed == 10*time.Second && e.Reminders[9].Fixed == time.Second
		}},
	} {
		p, err := program.Parse([]byte("[expiry]\n"+c.src+"\n"), "p.toml")
		if err != nil {
			t.Errorf("%q: %v", c.src, err)
			continue
		}
		if !c.check(p.Expiry) {
			t.Errorf("%q: expiry = %+v", c.src, p.Expiry)
		}
	}
}

func TestParse_ExpiryErrorsNameTheKey(t *testing.T) {
	const s = "[expiry]\n"
	const ae = s + "policy = \"after_earn\"\n"
	cases := map[string]struct{ toml, want string }{
		"bad policy":             {s + `policy = "never"`, `expiry.policy: "never" is not one of none, after_earn, inactivity`},
		"policy a bool":          {s + `policy = false`, `expiry.policy: false is not one of`},
		"after missing":          {ae, `expiry.after is required when expiry.policy is after_earn`},
		"after missing inactive": {s + `policy = "inactivity"`, `expiry.after is required when expiry.policy is inactivity`},
		"after with none":        {s + "policy = \"none\"\nafter = \"12mo\"", `expiry.after: expiry.policy is none, so nothing expires by policy; set policy to after_earn or inactivity, or remove after`},
		"after without policy":   {s + `after = "12mo"`, `expiry.after: expiry.policy is none (the default), so nothing expires by policy`},
		"after not a duration":   {ae + `after = "12x"`, `expiry.after: "12x" is not a duration (use e.g. 90s, 30m, 12h, 7d, 18mo)`},
		"after 0":                {ae + `after = "0d"`, `expiry.after: "0d" is not a duration: it must be longer than 0`},
		"after negative":         {ae + `after = "-5m"`, `expiry.after: "-5m" is not a duration`},
		"after fraction":         {ae + `after = "1.5h"`, `expiry.after: "1.5h" is not a duration`},
		"after in years":         {ae + `after = "1y"`, `expiry.after: "1y" is not a duration (use e.g. 90s, 30m, 12h, 7d, 18mo; a year is 12mo`},
		"after a number":         {ae + `after = 30`, `expiry.after: 30 is not a duration; write it in quotes, such as "12mo"`},
		"after a table":          {ae + `after = { months = 12 }`, `expiry.after: a table is not a duration`},
		"after over 100 years":   {ae + `after = "1201mo"`, `expiry.after: "1201mo" is longer than 100 years`},
		"after 36525d":           {ae + `after = "36525d"`, `expiry.after: "36525d" is longer than 100 years`},
		"after overflow":         {ae + `after = "106752d"`, `expiry.after: "106752d" is too long a duration`},
		"reminder too long":      {ae + "after = \"30d\"\nreminders = [\"7d\", \"40d\"]", `expiry.reminders[1]: "40d" is not shorter than expiry.after (30d)`},
		"reminder as long":       {ae + "after = \"30d\"\nreminders = [\"720h\"]", `expiry.reminders[0]: "720h" is not shorter than expiry.after (30d)`},
		"reminder month vs days": {ae + "after = \"1mo\"\nreminders = [\"31d\"]", `expiry.reminders[0]: "31d" is not shorter than expiry.after (1mo)`},
		"reminder over 100y":     {s + `reminders = ["1201mo"]`, `expiry.reminders[0]: "1201mo" is longer than 100 years`},
		"reminder bad":           {ae + "after = \"12mo\"\nreminders = [\"30d\", \"7 d\"]", `expiry.reminders[1]: "7 d" is not a duration (use e.g.`},
		"reminder 0":             {s + `reminders = ["0s"]`, `expiry.reminders[0]: "0s" is not a duration: it must be longer than 0`},
		"reminder a number":      {s + `reminders = [7]`, `expiry.reminders[0]: 7 is not a duration; write it in quotes, such as "7d"`},
		"reminder a list":        {s + `reminders = [["7d"]]`, `expiry.reminders[0]: a list is not a duration`},
		"reminder a table":       {s + `reminders = [{ days = 7 }]`, `expiry.reminders[0]: a table is not a duration`},
		"reminder duplicate":     {ae + "after = \"12mo\"\nreminders = [\"7d\", \"1d\", \"168h\"]", `expiry.reminders[2]: "168h" is the same as expiry.reminders[0] ("7d"); list each reminder once`},
		"reminders a string":     {s + `reminders = "7d"`, `expiry.reminders: "7d" is not a list of durations; write it such as ["30d", "7d", "1d"]`},
		"reminders as tables":    {s + "[[expiry.reminders]]\nbefore = \"7d\"", `expiry.reminders: a list is not a list of durations`},
		"too many reminders":     {s + `reminders = ["1s", "2s", "3s", "4s", "5s", "6s", "7s", "8s", "9s", "10s", "11s"]`, `expiry.reminders: has 11 reminders; at most 10`},
		"sweep in months":        {s + `sweep_every = "1mo"`, `expiry.sweep_every: "1mo" is not from 10s to 24h (use seconds, minutes or hours, such as "5m" or "1h")`},
		"sweep too often":        {s + `sweep_every = "9s"`, `expiry.sweep_every: "9s" is not from 10s to 24h`},
		"sweep too rare":         {s + `sweep_every = "25h"`, `expiry.sweep_every: "25h" is not from 10s to 24h`},
		"sweep 2d":               {s + `sweep_every = "2d"`, `expiry.sweep_every: "2d" is not from 10s to 24h`},
		"sweep bad":              {s + `sweep_every = "1h30m"`, `expiry.sweep_every: "1h30m" is not a duration`},
		"sweep a number":         {s + `sweep_every = 3600`, `expiry.sweep_every: 3600 is not a duration; write it in quotes, such as "1h"`},
		"unknown key":            {s + `remind = ["7d"]`, `unknown key "expiry.remind" (known in [expiry]: policy, after, reminders, sweep_every)`},
		"unknown sub-table":      {"[expiry.rules]\nx = 1", `unknown key "expiry.rules" (known in [expiry]: policy`},
		"expiry not a table":     {`expiry = "12mo"`, `"expiry"`},
		"expiry as array":        {"[[expiry]]\npolicy = \"none\"", `"expiry"`},
		"unknown top key":        {"[expiri]\npolicy = \"none\"", `unknown key "expiri" (known: program.name`},
	}
	for name, c := range cases {
		_, err := program.Parse([]byte(c.toml), "p.toml")
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "p.toml: ") {
			t.Errorf("%s: error %v, want one naming %s and the file", name, err, c.want)
		}
	}
}
