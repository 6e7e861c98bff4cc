# An action waiting for the connection of a target a panel dialed on
# demand goes to the SDK that registers that id at another URL (t/312);
# when that SDK never acks, the ack timeout counts from the moment the
# action was written to it, not from the moment the panel sent it
# (docs/directives.md, "Precedence of targets": "their ack timeout starts
# again there").  With amonitor_ack_timeout 3s and the register 2 s after
# the send, ACK_TIMEOUT comes about 5 s after the send, not 3 s; it comes
# once, and ends the action (amonitor_ack_late_window 0): the same msg_id
# again is a duplicate of a failed attempt, never run a second time.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

my $ACK = 3000;    # amonitor_ack_timeout, ms
my $REG = 2000;    # the register, this long after the action

my $t = Test::AMonitor->new(workers => 1, log_level => 'info');
my $hub = fake_sdk(port => $t->port(1), target_id => 'hub',
    heartbeat_interval => 0);

# the SDK the id is registered at: it runs actions and never acks them;
# when each arrived is noted
my %written;
my $real = fake_sdk(port => $t->port(2), target_id => 'real',
    heartbeat_interval => 0, no_ack => 1,
    on_action => sub {
        my ($sdk, $env) = @_;
        $written{ $env->{msg_id} } //= now_ms();
        return;
    });

# where a handshake is never answered: the kernel completes the TCP
# connection, nobody accepts it
my $mute = mute_listener();
my $mute_port = $mute->sockport;

$t->write_config(
    http_config => <<"EOC",
    amonitor_zone amon 1m;
    amonitor_target hub ws://127.0.0.1:%%PORT_1%%/;
    amonitor_allow_url ws://127.0.0.1:*;
    amonitor_connect_timeout 10s;
    amonitor_ack_timeout ${ACK}ms;
    amonitor_ack_late_window 0;
EOC
    config => 'location = /ws/panel { amonitor_panel on; }',
)->run;

ok($hub->wait_connections(1), 'the configured SDK is connected');

my $p = $t->panel('/ws/panel');

sub url { return 'ws://127.0.0.1:' . $_[0] . '/' }

sub act { $p->send_action(@_) }


# the action waits for the dial of "sq" at the mute URL
$t->mark_log;
my $t0 = now_ms();
act('w-1', 'sq', url($mute_port));
sleep_loop(($t0 + $REG - now_ms()) / 1000);
is(scalar($p->answers_to('w-1')), 0, 'no answer while the dial waits for its '
    . 'handshake');

# the SDK behind hub registers "sq" at the URL of real
$hub->send_all({ msg_id => uuid4(), type => 'register', target_id => 'sq',
    timestamp => now_ms(),
    payload => { target_id => 'sq', sdk_url => url($t->port(2)) } });
ok($t->wait_error_log(
        qr/register of "sq" .* displaces the target "sq" dialed on demand/,
        5),
    'the register displaced the dial');

ok(wait_for(sub { $written{'w-1'} }, 3), 'w-1 was written to the '
    . 'registering SDK');
my $sent_at = ($written{'w-1'} // now_ms()) - $t0;
cmp_ok($sent_at, '>=', $REG, 'after the register');

# its one answer: ACK_TIMEOUT, an ack timeout after it was written there
my $r;
wait_for(sub { ($r) = $p->answers_to('w-1'); $r },
    ($t0 + $sent_at + $ACK + 2000 - now_ms()) / 1000);
my $at = now_ms() - $t0;
is($r && $r->{type}, 'error', 'w-1: answered with an error')
    or diag(explain($r));
is($r && $r->{payload}{code}, 'ACK_TIMEOUT', 'w-1: ACK_TIMEOUT')
    or diag(explain($r));
ok($r && $r->{payload}{final}, 'w-1: final (no late window)');
note("written at $sent_at ms, ACK_TIMEOUT at $at ms after the send");
cmp_ok($at, '>=', $REG + $ACK - 500,
    'not one ack timeout after the send: one after the retarget');
cmp_ok($at - $sent_at, '>=', $ACK - 300,
    'a whole ack timeout after it was written to the SDK');
cmp_ok($at - $sent_at, '<', $ACK + 1500, 'and not much later');

# nothing more about it
sleep_loop(1.5);
is(scalar($p->answers_to('w-1')), 1, 'w-1: exactly one answer')
    or diag(explain([$p->answers_to('w-1')]));
is($real->executed('w-1'), 1, 'w-1: run once by the registered SDK');

# ended as failed: the same id again is a duplicate, not a second run
$p->clear;
act('w-1', 'sq');
my $d = $p->answer_to('w-1', 5);
ok($d && $d->{payload}{duplicate}, 'w-1 again: a duplicate')
    or diag(explain($d));
like($d && $d->{payload}{message}, qr/^duplicate ignored/,
    'w-1 again: duplicate ignored');
is($d && $d->{payload}{state}, 'failed', 'w-1 again: the first attempt '
    . 'failed') or diag(explain($d));
is($d && ref $d->{payload}{original} eq 'HASH'
        && $d->{payload}{original}{code}, 'ACK_TIMEOUT',
    'w-1 again: with ACK_TIMEOUT as its original answer');
is($real->executed('w-1'), 1, 'still run once');

$t->no_error_log(qr/exited on signal|\[alert\]/, 'no crash, no alert');

$p->close(1000);
done_testing();
