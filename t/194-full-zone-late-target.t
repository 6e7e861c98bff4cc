# A target whose state record comes after the dedupe table filled the
# zone (the usual state of a busy agent): one added by a reload gets its
# record all the same, from the room of the least recently used dedupe
# entries, so a new panel's snapshot names it (target_status and its
# last heartbeat, which takes room the same way) and /metrics lists it.
# It had no record, silently.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

my $t = Test::AMonitor->new(workers => 2, panel_snapshot => 1);
my $alpha = fake_sdk(port => $t->port(1), target_id => 'alpha',
    heartbeat_interval => 0.3);
# beta says one heartbeat, when a worker connects: a new panel can have
# it from the snapshot only
my $beta = fake_sdk(port => $t->port(2), target_id => 'beta',
    heartbeat_interval => 0);

my $base = <<'EOC';
    amonitor_zone amon 128k;
    amonitor_reconnect 50ms 300ms;
    amonitor_target alpha ws://127.0.0.1:%%PORT_1%%/;
EOC
my $server = <<'EOC';
location = /ws/panel { amonitor_panel on; }
location = /metrics { amonitor_metrics; }
EOC

$t->write_config(http_config => $base, config => $server)->run;
ok($alpha->wait_connections(2), 'both workers dialed alpha');

sub metric {
    my ($re) = @_;
    my $b = $t->http_get('/metrics')->{body} // '';
    return $b =~ $re ? $1 : -1;
}

# 1500 actions fill the 128k zone with dedupe entries
my $p = $t->panel('/ws/panel?targets=');
my $acks = 0;
for my $batch (1 .. 6) {
    $p->send_json({ msg_id => uuid4(), type => 'action', target_id => 'alpha',
        payload => { action => 'restart' } }) for 1 .. 250;
    $p->recv_until(sub {
        $acks++ if ($_[0]{json}{type} // '') eq 'action_ack';
        return $acks == 250 * $batch;
    }, 20);
}
is($acks, 1500, '1500 actions acked');
cmp_ok(metric(qr/^amonitor_evictions_total (\d+)$/m), '>', 0,
    'the zone is full and evicts');
$p->close(1000);

# a reload adds beta
$t->write_config(http_config => $base
    . "    amonitor_target beta ws://127.0.0.1:%%PORT_2%%/;\n",
    config => $server);
$t->reload;
ok($beta->wait_connections(2, 10), 'both new workers dialed beta');
sleep_loop(1);

my $q = $t->panel('/ws/panel');
my $st = $q->recv_type('target_status', target_id => 'beta', timeout => 5);
is($st && $st->{json}{payload}{state}, 'up',
    "a new panel's snapshot names beta, up");
ok($q->recv_type('heartbeat', target_id => 'beta', timeout => 5),
    'and its last heartbeat');
is(metric(qr/^amonitor_target_up\{target="beta"\} (\d+)$/m), 1,
    '/metrics lists beta up');
$t->no_error_log(qr/no room in the zone for the state of target/,
    'no target left without its state');

$t->stop;
$alpha->stop;
$beta->stop;

done_testing;
