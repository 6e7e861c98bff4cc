# An action waiting for the connection of a target a panel dialed on
# demand, when an SDK registers that id at another URL (the register
# displaces the dial): the action never reached the dialed URL, so it
# goes to the SDK that now holds the id and is acked by it.  Before, it
# was answered TARGET_UNAVAILABLE ("cannot connect to the target") though
# the target had just become reachable.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

my $t = Test::AMonitor->new(workers => 1, log_level => 'info');
my $hub = fake_sdk(port => $t->port(1), target_id => 'hub',
    heartbeat_interval => 0);
my $real = fake_sdk(port => $t->port(2), target_id => 'real',
    heartbeat_interval => 0);

# where a handshake is never answered: the kernel completes the TCP
# connection, nobody accepts it
my $mute = mute_listener();
my $mute_port = $mute->sockport;

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_target hub ws://127.0.0.1:%%PORT_1%%/;
    amonitor_allow_url ws://127.0.0.1:*;
    amonitor_connect_timeout 10s;
    amonitor_ack_timeout 6s;
EOC
    config => 'location = /ws/panel { amonitor_panel on; }',
)->run;

ok($hub->wait_connections(1), 'the configured SDK is connected');

my $p = $t->panel('/ws/panel');

sub url { return 'ws://127.0.0.1:' . $_[0] . '/' }

sub act { $p->send_action(@_) }

# two actions wait for the dial of "sq" at the mute URL
$t->mark_log;
act('w-1', 'sq', url($mute_port));
act('w-2', 'sq', url($mute_port));
my $early = $p->answer_to('w-1', 1);
ok(!$early, 'no answer while the dial waits for its handshake')
    or diag(explain($early));

# the SDK behind hub registers "sq" at the URL of real
my $t0 = now_ms();
$hub->send_all({ msg_id => uuid4(), type => 'register', target_id => 'sq',
    timestamp => now_ms(),
    payload => { target_id => 'sq', sdk_url => url($t->port(2)) } });
ok($t->wait_error_log(qr/register of "sq" .* displaces the target "sq" dialed on demand/, 5),
    'the register displaced the dial');

for my $id ('w-1', 'w-2') {
    my $r = $p->answer_to($id, 5);
    is($r && $r->{type}, 'action_ack', "$id: acked")
        or diag(explain($r));
    is($real->executed($id), 1, "$id: run once by the registered SDK");
}
cmp_ok(now_ms() - $t0, '<', 5000, 'before the ack timeout of the dial');

# the same id again is a duplicate, not a second run
act('w-1', 'sq');
my $d = $p->answer_to('w-1', 5);
is($d && $d->{payload}{message}, 'duplicate ignored',
    'w-1 again: duplicate ignored') or diag(explain($d));
is($real->executed('w-1'), 1, 'still run once');

$t->no_error_log(qr/exited on signal|\[alert\]/, 'no crash, no alert');

$p->close(1000);
done_testing();
