# End-to-end checks against a running demo (make demo, in another
# terminal): the amonitor CLI sends actions through the agent on :8080 to
# the example SDKs and checks acks and de-duplication.  Skipped unless
# RUN_E2E=1.  E2E_URL and E2E_TARGET select another agent or target.

use strict;
use warnings;

use FindBin;
use JSON::PP;
use Test::More;

if (($ENV{RUN_E2E} // '') ne '1') {
    plan skip_all => 'end-to-end checks need a running demo: start '
        . '"make demo", then run RUN_E2E=1 make test';
}

my $ROOT = "$FindBin::Bin/..";
my $CLI = "$ROOT/build/amonitor";
my $URL = $ENV{E2E_URL} // 'ws://127.0.0.1:8080/ws/panel';
my $TARGET = $ENV{E2E_TARGET} // 'demo-target-a';

ok(-x $CLI, "the CLI is built ($CLI)")
    or BAIL_OUT('run "make tools" first');

# run the CLI; returns (exit status, stdout, stderr)
sub cli {
    my (@args) = @_;
    my $err = "/tmp/amonitor-e2e-$$.err";
    my $out = `'$CLI' @{[ map { "'$_'" } @args ]} 2>'$err'`;
    my $rc = $? >> 8;
    open(my $fh, '<', $err) or die "$err: $!";
    my $stderr = do { local $/; <$fh> };
    close $fh;
    unlink $err;
    return ($rc, $out, $stderr);
}

my $id = sprintf('e2e-%d-%d', $$, time());

my ($rc, $out, $err) = cli('send', '--url', $URL, '--target-id', $TARGET,
    '--msg-id', "$id-send", '--timeout', '10');
is($rc, 0, "send: exit 0 (restart on $TARGET succeeded)") or diag($err);
like($out, qr/^ack_matched \{/, 'send: prints ack_matched and the ack');

my ($json) = $out =~ /^ack_matched (\{.*\})$/m;
my $ack = eval { decode_json($json // '') } // {};
is($ack->{type}, 'action_ack', 'send: the ack is an action_ack');
is($ack->{payload}{action_msg_id}, "$id-send",
    'send: the ack answers our msg_id');
is($ack->{payload}{message}, 'restarted', 'send: the SDK said restarted');
ok($ack->{payload}{final}, 'send: the ack is the final answer ("final":true)');

($rc, $out, $err) = cli('dedupe-check', '--url', $URL, '--target-id',
    $TARGET, '--msg-id', "$id-dedupe", '--timeout', '10');
is($rc, 0, 'dedupe-check: exit 0') or diag($err);
is($out, "dedupe_ok\n", 'dedupe-check: dedupe_ok');

($rc, $out, $err) = cli('send', '--url', $URL, '--target-id', $TARGET,
    '--action', 'fly', '--timeout', '10');
is($rc, 1, 'send: an unsupported action exits 1');
like($err, qr/unsupported action: fly/, 'send: ... with the SDK\'s reason');

($rc, $out, $err) = cli('send', '--url', $URL, '--target-id',
    'no-such-target-' . $$, '--timeout', '10', '--json');
my $line = eval { decode_json((split /\n/, $out)[0] // '') } // {};
is($rc, 1, 'send: an unknown target exits 1');
is($line->{event}, 'error', 'send: ... with an error envelope')
    or diag($out);

done_testing();
