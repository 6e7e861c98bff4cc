# Actions waiting for the connection of a target a panel dialed on
# demand, when that target is forgotten because amonitor_learned_expire
# ran out (nobody ever had it open: its handshake is never answered).
# No register holds the id or the URL, so there is nowhere else for them
# to go: each gets one final answer, TARGET_UNAVAILABLE, when the target
# is forgotten (docs/directives.md, amonitor_learned_expire: a forgotten
# target is "no longer dialed"; amonitor_dial_attempts: actions waiting
# for a forgotten dial get TARGET_UNAVAILABLE, later actions that name it
# by its id UNKNOWN_TARGET; docs/protocol.md: an action waits for a
# connection in progress at most amonitor_ack_timeout, one final answer).
# TARGET_UNAVAILABLE releases the claim: the same msg_id again is a new
# attempt, and runs once.
#
# Before the fix, the actions were resolved again (the retarget of t/312)
# and their target_url dialed the forgotten target anew, with a new ack
# timeout.  Whenever amonitor_ack_timeout was longer than the time a dial
# takes to be forgotten (amonitor_learned_expire, plus up to a second),
# this looped ("forgotten: no longer in the registry", "new target",
# every amonitor_learned_expire) and the actions were never answered.
# The retarget now looks only for what holds the id or URL, without
# dialing.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

my $ACK = 8000;    # amonitor_ack_timeout, ms
my $BOUND = 5000;  # the answer comes when the target is forgotten: 2-3 s

my $t = Test::AMonitor->new(workers => 1, log_level => 'info');

# where a handshake is never answered: the kernel completes the TCP
# connection, nobody accepts it
my $mute = mute_listener();
my $mute_port = $mute->sockport;

# the connect timeout is far longer than the test: the dial never fails
# by itself, only amonitor_learned_expire ends it
$t->write_config(
    http_config => <<"EOC",
    amonitor_zone amon 1m;
    amonitor_allow_url ws://127.0.0.1:*;
    amonitor_connect_timeout 60s;
    amonitor_ack_timeout ${ACK}ms;
    amonitor_learned_expire 2s;
EOC
    config => 'location = /ws/panel { amonitor_panel on; }',
)->run;

my $p = $t->panel('/ws/panel');

sub url { return 'ws://127.0.0.1:' . $_[0] . '/' }

sub act { $p->send_action(@_) }


# two actions dial "sq" at the mute URL, a third names it by its id
$t->mark_log;
my $t0 = now_ms();
act('x-1', 'sq', url($mute_port));
act('x-2', 'sq', url($mute_port));
ok($t->wait_error_log(qr/new target "sq" at \Q${\ url($mute_port)}\E/, 5),
    'the dial of "sq" started');
act('x-3', 'sq');

my $early = $p->answer_to('x-1', 1);
ok(!$early, 'no answer while the dial waits for its handshake')
    or diag(explain($early));

ok($t->wait_error_log(
        qr/learned target "sq" at \S+ forgotten: no longer in the registry/,
        5),
    'amonitor_learned_expire forgot "sq"');
my $log_at_forget = length $t->read_error_log;

# the first answer to each, and when it came (in any order)
my (%first, %at);
wait_for(sub {
    for my $id ('x-1', 'x-2', 'x-3') {
        next if $first{$id};
        my ($m) = $p->answers_to($id) or next;
        $first{$id} = $m;
        $at{$id} = now_ms() - $t0;
    }
    return keys %first == 3;
}, ($t0 + $BOUND - now_ms()) / 1000);
note('answered after ', join(', ', map { "$_ " . ($at{$_} // '-') . ' ms' }
    sort keys %at));

for my $id ('x-1', 'x-2', 'x-3') {
    my $r = $first{$id};
    is($r && $r->{type}, 'error', "$id: answered with an error")
        or diag(explain($r));
    is($r && $r->{payload}{code}, 'TARGET_UNAVAILABLE',
        "$id: TARGET_UNAVAILABLE") or diag(explain($r));
    ok($r && $r->{payload}{final}, "$id: final");
    ok($r && $at{$id} < $BOUND, "$id: within $BOUND ms, before the ack "
        . "timeout ($ACK ms)") or diag('answered after ', $at{$id} // '-');
}

# past the ack timeout of the first attempt: nothing more about them
sleep_loop(($t0 + $ACK + 1000 - now_ms()) / 1000);
for my $id ('x-1', 'x-2', 'x-3') {
    is(scalar($p->answers_to($id)), 1, "$id: exactly one answer")
        or diag(explain([$p->answers_to($id)]));
}

# forgotten: not dialed again, and its id names nothing now
my $after = substr($t->read_error_log, $log_at_forget);
unlike($after, qr/new target "sq"/,
    'the forgotten target is not dialed again');

act('x-4', 'sq');
my $u = $p->answer_to('x-4', 3);
is($u && $u->{payload}{code}, 'UNKNOWN_TARGET',
    'a later action naming "sq" by its id: UNKNOWN_TARGET')
    or diag(explain($u));

# the claim was released: the same msg_id again is a new attempt, and
# runs, once, at the SDK that listens at that URL now
close $mute;
my $sdk = fake_sdk(port => $mute_port, target_id => 'sq',
    heartbeat_interval => 0);
$p->clear;
act('x-1', 'sq', url($mute_port));
my $r = $p->answer_to('x-1', 5);
is($r && $r->{type}, 'action_ack', 'x-1 again: acked by the SDK')
    or diag(explain($r));
ok($r && !$r->{payload}{duplicate}, 'x-1 again: not a duplicate');
is($sdk->executed('x-1'), 1, 'x-1 again: run once');
is($sdk->executed('x-2'), 0, 'x-2: never run');

$t->no_error_log(qr/exited on signal|\[alert\]/, 'no crash, no alert');

$p->close(1000);
done_testing();
