package aws

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/keyward/keyward/providers"
)

// maxBatchPages bounds the NextToken pages followed for one
// BatchGetSecretValue chunk (AWS may page even a short id list).
const maxBatchPages = 10

// wanted is one distinct secret version FetchBatch reads, and the
// positions of the refs that asked for it.
type wanted struct {
	t      target
	refs   []int
	secret providers.Secret
	err    error
	done   bool
}

// FetchBatch reads the secrets refs name, returning one Secret and one
// error per ref, in order. Refs to the same secret version are read once.
// Refs to the current version are read with BatchGetSecretValue, at most
// BatchSize ids per call, one call per region and BatchSize ids; refs with
// ?version-id= or a ?version-stage= other than AWSCURRENT (which batch
// cannot select) are read with GetSecretValue. At most
// Options.Concurrency calls run at once; FetchBatch returns when all are
// done.
//
// When IAM denies BatchGetSecretValue, the provider logs it once and reads
// those secrets, now and from then on, with GetSecretValue. A secret the
// batch answer does not account for is read with GetSecretValue as well.
// Each error follows Fetch's rules.
func (p *Provider) FetchBatch(ctx context.Context, refs []providers.Ref) ([]providers.Secret, []error) {
	secrets := make([]providers.Secret, len(refs))
	errs := make([]error, len(refs))
	if len(refs) == 0 {
		return secrets, errs
	}

	byKey := map[target]*wanted{}
	var all []*wanted
	for i, ref := range refs {
		if err := CheckRef(ref); err != nil {
			errs[i] = err
			continue
		}
		t := targetOf(ref)
		if t.batchable() {
			t.stage = "" // AWSCURRENT is the default: one read serves both spellings
		}
		w, ok := byKey[t]
		if !ok {
			w = &wanted{t: t}
			byKey[t] = w
			all = append(all, w)
		}
		w.refs = append(w.refs, i)
	}

	client, region, err := p.getClient(ctx)
	if err != nil {
		for _, w := range all {
			w.err = err
		}
	} else {
		p.fetchAll(ctx, client, region, all)
	}
	for _, w := range all {
		for _, i := range w.refs {
			secrets[i], errs[i] = w.secret, w.err
		}
	}
	return secrets, errs
}

// fetchAll fills every w: batch calls and single reads first, then single
// reads of what the batches left unanswered.
func (p *Provider) fetchAll(ctx context.Context, client api, region string, all []*wanted) {
	var singles []*wanted
	byRegion := map[string][]*wanted{}
	var regions []string
	for _, w := range all {
		if !w.t.batchable() || p.batchDenied.Load() {
			singles = append(singles, w)
			continue
		}
		r := w.t.region
		if r == "" {
			r = region
		}
		if _, ok := byRegion[r]; !ok {
			regions = append(regions, r)
		}
		byRegion[r] = append(byRegion[r], w)
	}
	var calls []func()
	for _, r := range regions {
		ws := byRegion[r]
		if len(ws) == 1 {
			singles = append(singles, ws[0])
			continue
		}
		for start := 0; start < len(ws); start += BatchSize {
			chunk := ws[start:min(start+BatchSize, len(ws))]
			calls = append(calls, func() { p.batch(ctx, client, region, r, chunk) })
		}
	}
	for _, w := range singles {
		calls = append(calls, func() { w.secret, w.err = p.get(ctx, client, region, w.t); w.done = true })
	}
	p.run(calls)

	// Second round: what batches could not answer.
	calls = calls[:0]
	for _, w := range all {
		if !w.done {
			calls = append(calls, func() { w.secret, w.err = p.get(ctx, client, region, w.t); w.done = true })
		}
	}
	p.run(calls)
}

// run calls every fn, at most Options.Concurrency at a time, and returns
// when all have returned.
func (p *Provider) run(fns []func()) {
	if len(fns) == 0 {
		return
	}
	if len(fns) == 1 {
		fns[0]()
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(p.opts.Concurrency, len(fns)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(fns) {
					return
				}
				fns[i]()
			}
		})
	}
	wg.Wait()
}

// batch reads the current version of up to BatchSize secrets of one
// region with BatchGetSecretValue, marking each w it answers done. A w
// left not done is read singly afterwards.
func (p *Provider) batch(ctx context.Context, client api, clientRegion, region string, ws []*wanted) {
	const op = "BatchGetSecretValue"
	if p.batchDenied.Load() {
		return // another chunk learned that batch is denied: all go singly
	}
	ids := make([]string, len(ws))
	for i, w := range ws {
		ids[i] = w.t.id
	}
	if region == "" {
		err := needRegion(op, ws[0].t, "")
		for _, w := range ws {
			w.err, w.done = err, true
		}
		return
	}
	in := &secretsmanager.BatchGetSecretValueInput{SecretIdList: ids}
	att := p.retries.Call(op, strings.Join(ids, ","))
	opts := append(callOptions(target{region: region}, clientRegion), p.observe(att))
	for page := 0; page < maxBatchPages; page++ {
		out, err := client.BatchGetSecretValue(ctx, in, opts...)
		if err != nil {
			if isCode(err, "AccessDeniedException", "AccessDenied") {
				if p.batchDenied.CompareAndSwap(false, true) {
					p.log.Warn("BatchGetSecretValue is denied; reading secrets one by one with GetSecretValue from now on (grant secretsmanager:BatchGetSecretValue to save calls)", "region", region)
				}
				return
			}
			for _, w := range ws {
				if !w.done {
					w.err, w.done = p.apiError(ctx, op, w.t.String(), err, att), true
				}
			}
			return
		}
		for _, e := range out.SecretValues {
			for _, w := range ws {
				if !w.done && entryMatches(w.t.id, e) {
					w.secret, w.done = secretOf(e.SecretString, e.SecretBinary, e.VersionId), true
				}
			}
		}
		for _, e := range out.Errors {
			for _, w := range ws {
				if !w.done && e.SecretId != nil && *e.SecretId == w.t.id {
					w.err, w.done = entryError(w.t.String(), e.ErrorCode, e.Message), true
				}
			}
		}
		if out.NextToken == nil || *out.NextToken == "" {
			return
		}
		in.NextToken = out.NextToken
	}
}

// entryMatches reports whether the batch answer e is the secret that id
// (a name, a full ARN or an ARN without AWS's random 6-character suffix)
// names.
func entryMatches(id string, e types.SecretValueEntry) bool {
	name, arn := awssdk.ToString(e.Name), awssdk.ToString(e.ARN)
	if id == name || id == arn {
		return true
	}
	return strings.HasPrefix(id, "arn:") && len(arn) == len(id)+7 && strings.HasPrefix(arn, id+"-")
}
