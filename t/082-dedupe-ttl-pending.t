# A claim is kept while its action may still be answered, whatever
# amonitor_dedupe_ttl says: with a TTL shorter than amonitor_ack_timeout
# (plus the late window), a repeat of a msg_id whose action is still
# waiting for its ack is a pending duplicate, never forwarded again (the
# SDK ran it twice before, and the first ack was then dropped as one for
# an unknown action).  The TTL counts from the outcome, as with Redis.
# A repeat from the panel connection whose first attempt is still on its
# way (sent, or waiting for the target's handshake) is answered with
# "final":false: the first attempt's own final answer is still to come
# to that panel, and only that one is final.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Redis;
use IO::Socket::INET;

my $t = Test::AMonitor->new(workers => 1, log_level => 'info');
my $sdk = fake_sdk(port => $t->port(1), target_id => 'tp-a',
    heartbeat_interval => 0, ack_delay => tscale(2.5));

# tp-w: a listener that never accepts, so the agent's handshake to it
# stays unanswered and its actions wait for the connection
my $mute = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
    LocalPort => $t->port(2), Listen => 16, ReuseAddr => 1)
    or die "listen: $!";

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_target tp-a ws://127.0.0.1:%%PORT_1%%/;
    amonitor_target tp-w ws://127.0.0.1:%%PORT_2%%/;
    amonitor_connect_timeout 30s;
    amonitor_dedupe_ttl 1s;
    amonitor_ack_timeout 6s;
    amonitor_ack_late_window 0;
    amonitor_send_queue 16;
EOC
    config => 'location = /ws/panel { amonitor_panel on; }',
)->run;

ok($sdk->wait_connections(1), 'the SDK is dialed');

sub action {
    my ($id, $target) = @_;
    return { msg_id => $id, type => 'action', target_id => $target // 'tp-a',
        timestamp => now_ms(), payload => { action => 'restart' } };
}

sub answer {
    my ($p, $id, $timeout) = @_;
    return $p->answer_to($id, $timeout // 8);
}

my $p = $t->panel('/ws/panel');
my $id = uuid4();
my $t0 = now_ms();
$p->send_json(action($id));

# past the TTL, the action still waits for its ack
sleep_loop(tscale(1.5));
my $q = $t->panel('/ws/panel');
$q->send_json(action($id));
my $d = answer($q, $id, 3);
like($d && $d->{payload}{message}, qr/^duplicate ignored/,
    'a repeat past the TTL, while the action waits for its ack: duplicate');
is($d && $d->{payload}{state}, 'pending', 'pending');
cmp_ok(now_ms() - $t0, '<', tscale(2.5) * 1000,
    'answered before the first ack came');

ok($d && $d->{payload}{final}, 'final for another panel connection');

# the first attempt's panel repeats it: not final, the ack still comes
$p->send_json(action($id));
my $a = answer($p, $id);
ok($a && $a->{payload}{duplicate}, 'the repeat on the same connection: '
    . 'a duplicate first');
is($a && $a->{payload}{state}, 'pending', 'pending');
ok($a && defined $a->{payload}{final} && !$a->{payload}{final},
    'with "final":false');
$a = answer($p, $id);
ok($a && $a->{payload}{success} && !$a->{payload}{duplicate},
    'the first panel gets the SDK\'s ack');
ok($a && $a->{payload}{final}, 'the ack is the final answer');
sleep_loop(0.5);
is($sdk->executed($id), 1, 'the SDK ran it once');
is($t->log_count(qr/ack for an unknown action/), 0,
    'no ack dropped as unknown');

# the TTL counts from the ack
$q->send_json(action($id));
$d = answer($q, $id, 3);
is($d && $d->{payload}{state}, 'done', 'a repeat after the ack: done');
is($sdk->executed($id), 1, 'still once');

ok($d && $d->{payload}{final}, 'final once the first attempt is done');

# an action waiting for its target's handshake, repeated by its panel
my $wid = uuid4();
$p->send_json(action($wid, 'tp-w'));
sleep_loop(0.3);
$p->send_json(action($wid, 'tp-w'));
$a = answer($p, $wid, 3);
ok($a && $a->{payload}{duplicate} && defined $a->{payload}{final}
    && !$a->{payload}{final},
    'a repeat while the first waits for the target: not final');
$a = answer($p, $wid, 10);
is($a && $a->{type}, 'error', 'then the first attempt\'s own answer');
is($a && $a->{payload}{code}, 'TARGET_UNAVAILABLE', 'TARGET_UNAVAILABLE');
ok($a && $a->{payload}{final}, 'final');

# past the panel's hard limit (twice amonitor_send_queue actions waiting,
# here all in one write), a repeat of one of its actions still on its way
# is that same duplicate, not RATE_LIMITED: one final answer per action
sub over_the_limit {
    my ($p, $store) = @_;
    my @burst = map { uuid4() } 1 .. 34;
    my $new = uuid4();
    $p->send_json(action($_)) for @burst, $burst[0], $new;
    my $a = answer($p, $burst[0], 3);
    ok($a && $a->{payload}{duplicate}
        && ($a->{payload}{state} // '') eq 'pending'
        && defined $a->{payload}{final} && !$a->{payload}{final},
        "$store: over the limit, a repeat of an action on its way: "
        . 'pending, not final') or diag(explain($a));
    $a = answer($p, $new, 3);
    is($a && $a->{payload}{code}, 'RATE_LIMITED',
        "$store: a new action over the limit is RATE_LIMITED");
    $a = answer($p, $burst[0], 10);
    ok($a && $a->{payload}{success} && !$a->{payload}{duplicate}
        && $a->{payload}{final},
        "$store: the first attempt's ack is its one final answer")
        or diag(explain($a));
    is($sdk->executed($burst[0]), 1, "$store: run once");
}
over_the_limit($p, 'zone');

$p->close(1000);
$q->close(1000);
$t->stop;

# the same with Redis as the store: the repeat's claim is answered later
my $redis = Test::AMonitor::Redis->new;
ok($redis->start, 'redis-server runs on ' . $redis->addr);
my $tr = Test::AMonitor->new(workers => 1, log_level => 'info');
$tr->write_config(
    http_config => 'amonitor_zone amon 1m;
    amonitor_redis ' . $redis->addr . ' prefix=amon-082:;
    amonitor_target tp-a ws://127.0.0.1:' . $sdk->port . '/;
    amonitor_ack_timeout 6s;
    amonitor_send_queue 16;',
    config => 'location = /ws/panel { amonitor_panel on; }',
)->run;
ok($sdk->wait_connections(1), 'the SDK is dialed by the Redis agent');
my $r = $tr->panel('/ws/panel');
my $rid = uuid4();
$r->send_json(action($rid));
sleep_loop(0.3);
$r->send_json(action($rid));
$a = answer($r, $rid, 3);
ok($a && $a->{payload}{duplicate} && ($a->{payload}{state} // '') eq 'pending'
    && defined $a->{payload}{final} && !$a->{payload}{final},
    'Redis: a repeat on the same connection, pending: not final');
$a = answer($r, $rid);
ok($a && $a->{payload}{success} && !$a->{payload}{duplicate}
    && $a->{payload}{final}, 'then the SDK\'s ack, final');
is($sdk->executed($rid), 1, 'run once');
over_the_limit($r, 'Redis');
$r->close(1000);

done_testing();
