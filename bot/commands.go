package bot

import (
	"context"
	"fmt"
	"strings"

	"github.com/tally-loyalty/tally"
	"github.com/tally-loyalty/tally/ledger"
	"github.com/tally-loyalty/tally/locales"
)

// historyLimit is how many entries /history shows.
const historyLimit = 10

func builtins() []Command {
	return []Command{
		{Name: "help", Desc: "cmd_help", Usage: "/help", Run: help},
		// Telegram sends /start when someone first opens the bot.
		{Name: "start", Desc: "cmd_help", Usage: "/help", Run: help, Hidden: true},
		{Name: "balance", Desc: "cmd_balance", Usage: "/balance", Run: balance},
		{Name: "history", Desc: "cmd_history", Usage: "/history", Run: history},
		{Name: "lang", Desc: "cmd_lang", Usage: "/lang [code]", Run: lang,
			Options: []Option{{Name: "code", Desc: "opt_lang_code", Choices: locales.Supported}}},
		{Name: "notify", Desc: "cmd_notify", Usage: "/notify on|off", Run: notify,
			Options: []Option{{Name: "state", Desc: "opt_notify_state", Required: true, Choices: []string{"on", "off"}}}},
		{Name: "link", Desc: "cmd_link", Usage: "/link [code]", Run: link,
			Options: []Option{{Name: "code", Desc: "opt_link_code"}}},
	}
}

var errUsage = tally.Errorf(tally.EINVALID, "wrong arguments")

func (c *Call) self() ledger.MemberRef { return ledger.MemberRef{ID: c.Member.ID} }

func help(ctx context.Context, c *Call) (Reply, error) {
	var b strings.Builder
	b.WriteString(c.L.T("help_intro", map[string]any{"Program": c.router.prog.Name}))
	for _, cmd := range c.router.Commands() {
		if cmd.Moderator && !c.Moderator {
			continue
		}
		fmt.Fprintf(&b, "\n/%s — %s", cmd.Name, c.L.T(cmd.Desc, nil))
	}
	return Reply{Text: b.String(), Private: true}, nil
}

func balance(ctx context.Context, c *Call) (Reply, error) {
	if len(c.Args) > 0 {
		return Reply{}, errUsage
	}
	_, bal, err := c.router.ledger.Member(ctx, c.self())
	if err != nil {
		return Reply{}, err
	}
	if bal.Available == 0 && bal.Pending == 0 {
		return Reply{Text: c.L.T("balance_empty", nil), Private: true}, nil
	}
	lines := []string{c.L.N("balance_available", bal.Available, map[string]any{"Points": c.L.Number(bal.Available)})}
	if bal.Pending > 0 {
		lines = append(lines, c.L.N("balance_pending", bal.Pending, map[string]any{"Points": c.L.Number(bal.Pending)}))
	}
	exp, ok, err := c.router.ledger.NextExpiry(ctx, c.Member.ID)
	if err != nil {
		return Reply{}, err
	}
	if ok {
		lines = append(lines, c.L.N("balance_expiry", exp.Points, map[string]any{
			"Points": c.L.Number(exp.Points), "Date": c.L.Date(exp.At, c.router.prog.Location)}))
	}
	return Reply{Text: strings.Join(lines, "\n"), Private: true}, nil
}

func history(ctx context.Context, c *Call) (Reply, error) {
	if len(c.Args) > 0 {
		return Reply{}, errUsage
	}
	entries, _, err := c.router.ledger.History(ctx, c.self(), 0, historyLimit)
	if err != nil {
		return Reply{}, err
	}
	if len(entries) == 0 {
		return Reply{Text: c.L.T("history_empty", nil), Private: true}, nil
	}
	var b strings.Builder
	b.WriteString(c.L.N("history_title", int64(len(entries)), map[string]any{"Count": c.L.Number(int64(len(entries)))}))
	for _, e := range entries {
		points := c.L.Number(e.Points)
		if e.Points > 0 {
			points = "+" + points
		}
		b.WriteString("\n")
		b.WriteString(c.L.T("history_line", map[string]any{
			"Date": c.L.Date(e.CreatedAt, c.router.prog.Location), "Points": points, "Kind": c.L.T(kindMessage(e.Kind), nil)}))
		// Reasons of Tally's own transactions (links) are for operators, not members.
		if e.Reason != "" && (e.Kind == ledger.KindAward || e.Kind == ledger.KindDeduction) {
			b.WriteString(" — " + clipArg(e.Reason))
		}
		if e.ExpiresAt != nil && e.Points > 0 {
			b.WriteString(" (" + c.L.T("history_expires", map[string]any{"Date": c.L.Date(*e.ExpiresAt, c.router.prog.Location)}) + ")")
		}
	}
	return Reply{Text: b.String(), Private: true}, nil
}

func kindMessage(kind string) string {
	switch kind {
	case ledger.KindAward:
		return "history_kind_award"
	case ledger.KindDeduction:
		return "history_kind_deduction"
	case ledger.KindTask:
		return "history_kind_task"
	case "prize":
		return "history_kind_prize"
	case "expiry":
		return "history_kind_expiry"
	case "link_in", "link_out":
		return "history_kind_link"
	}
	return "history_kind_other"
}

func languageList(cat *locales.Catalog) string {
	var parts []string
	for _, code := range locales.Supported {
		parts = append(parts, fmt.Sprintf("%s (%s)", code, cat.For(code).Name()))
	}
	return strings.Join(parts, ", ")
}

func lang(ctx context.Context, c *Call) (Reply, error) {
	cat := c.router.catalog
	switch len(c.Args) {
	case 0:
		text := c.L.T("lang_current", map[string]any{"Language": c.L.Name()}) + "\n" +
			c.L.T("lang_list", map[string]any{"List": languageList(cat)})
		return Reply{Text: text, Private: true}, nil
	case 1:
	default:
		return Reply{}, errUsage
	}
	code := cat.Match(c.Args[0])
	if code == "" {
		return Reply{Text: c.L.T("lang_unknown", map[string]any{"Code": clipArg(c.Args[0]), "List": strings.Join(locales.Supported, ", ")}), Private: true}, nil
	}
	if err := c.router.ledger.SetLocale(ctx, c.Member.ID, code); err != nil {
		return Reply{}, err
	}
	return Reply{Text: cat.For(code).T("lang_set", nil), Private: true, Locale: code}, nil
}

func notify(ctx context.Context, c *Call) (Reply, error) {
	if len(c.Args) != 1 {
		return Reply{Text: c.L.T("notify_usage", nil), Private: true}, nil
	}
	var on bool
	switch strings.ToLower(c.Args[0]) {
	case "on":
		on = true
	case "off":
	default:
		return Reply{Text: c.L.T("notify_usage", nil), Private: true}, nil
	}
	if err := c.router.ledger.SetNotify(ctx, c.Member.ID, on); err != nil {
		return Reply{}, err
	}
	if on {
		return Reply{Text: c.L.T("notify_on", nil), Private: true}, nil
	}
	return Reply{Text: c.L.T("notify_off", nil), Private: true}, nil
}

func link(ctx context.Context, c *Call) (Reply, error) {
	l := c.router.ledger
	switch len(c.Args) {
	case 0:
		code, _, err := l.CreateLinkCode(ctx, c.Member.ID, c.User.Platform)
		if err != nil {
			return Reply{}, err
		}
		minutes := int64(ledger.LinkCodeTTL.Minutes())
		return Reply{Text: c.L.N("link_code", minutes, map[string]any{"Code": code, "Minutes": c.L.Number(minutes)}), Private: true}, nil
	case 1:
	default:
		return Reply{}, errUsage
	}
	res, err := l.Link(ctx, c.Args[0], c.Member.ID)
	if err != nil {
		return Reply{}, err
	}
	if res.Outcome == ledger.Linked && c.router.tasks != nil {
		// The season's board counts the joined accounts as one member.
		if err := c.router.tasks.MergeScores(ctx, res.Survivor); err != nil {
			c.router.log.Error("chat: season scores not merged after a link", "member", res.Survivor, "err", err)
		}
	}
	switch res.Outcome {
	case ledger.Linked:
		return Reply{Text: c.L.N("link_done", res.Balance, map[string]any{"Points": c.L.Number(res.Balance)}), Private: true}, nil
	case ledger.LinkAlready:
		return Reply{Text: c.L.T("link_already", nil), Private: true}, nil
	case ledger.LinkSame:
		return Reply{Text: c.L.T("link_same_account", nil), Private: true}, nil
	case ledger.LinkConflict:
		return Reply{Text: c.L.T("link_conflict", map[string]any{"Platform": platformName(c.User.Platform)}), Private: true}, nil
	}
	return Reply{Text: c.L.T("link_bad_code", nil), Private: true}, nil
}

func platformName(p string) string {
	switch p {
	case "telegram":
		return "Telegram"
	case "discord":
		return "Discord"
	}
	return p
}
