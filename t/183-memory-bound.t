# Memory per connection is bounded in bytes: a panel that does not read
# while an SDK sends large events holds at most
# amonitor_connection_buffer_limit; past it the panel is closed (1008),
# with a line at info and the oversize counter; a panel that reads gets
# everything, and the SDK is not stalled.  An SDK that does not read its
# actions is not closed: actions that do not fit get TARGET_UNAVAILABLE.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

my $t = Test::AMonitor->new(workers => 1);
my $sdk = fake_sdk(port => $t->port(1), target_id => 'mb-a',
    heartbeat_interval => 0);

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_target mb-a ws://127.0.0.1:%%PORT_1%%/;
    amonitor_target mb-deaf ws://127.0.0.1:%%PORT_2%%/;
    amonitor_ack_timeout 3s;
    amonitor_max_message_size 256k;
    amonitor_connection_buffer_limit 1m;
    amonitor_send_queue 4096;
EOC
    config => <<'EOC',
        location = /ws/panel { amonitor_panel on; amonitor_panel_snapshot off; }
        location = /status { amonitor_status; }
        location = /metrics { amonitor_metrics; }
EOC
)->run;

# an SDK that completes the handshake and then never reads
my $deaf = raw_sdk_listen($t->port(2));

ok($sdk->wait_connections(1), 'the SDK is connected');
my $deaf_conn = raw_sdk_accept($deaf, 5);
ok($deaf_conn, 'the deaf SDK was dialed');

sub status { return try_decode_json($t->http_get('/status')->{body}) // {} }

my $slow = $t->panel('/ws/panel');
my $fast = $t->panel('/ws/panel');
sleep_loop(0.2);
$slow->pause;

$t->mark_log;
my $N = 120;
my $blob = 'x' x (200 * 1024);
my $got = 0;
for my $i (1 .. $N) {
    $sdk->emit_event('big', { i => $i, blob => $blob });
    sleep_loop(0.01);
    while (my $m = $fast->recv(0)) { $got++ if ($m->{json}{type} // '') eq 'event' }
}
my $deadline = now_ms() + 10000;
while ($got < $N && now_ms() < $deadline) {
    my $m = $fast->recv(1) or next;
    $got++ if ($m->{json}{type} // '') eq 'event';
}
is($got, $N, "the panel that reads got all $N events of 200 KiB");

error_log_like(qr/\[info\] .*amonitor: panel #\d+ closed: it does not read, \d+ bytes held and \d+ more would pass amonitor_connection_buffer_limit 1048576/,
    'the panel that does not read was closed, logged at info');
is(status()->{oversize}, 1, 'counted in amonitor_status');
like($t->http_get('/metrics')->{body}, qr/^amonitor_oversize_closes_total 1$/m,
    'and in amonitor_metrics');
is(status()->{panels}, 1, 'one panel is left');

$slow->resume;
my $code = $slow->wait_closed(5);
is($code, 1008, 'the slow panel saw close code 1008');

my $id = uuid4();
$fast->send_json({ msg_id => $id, type => 'action', target_id => 'mb-a',
    timestamp => now_ms(), payload => { action => 'restart' } });
ok($fast->recv_type('action_ack', timeout => 5, action_msg_id => $id),
    'the SDK and the other panel work on');

subtest 'an SDK that does not read is not closed; actions that do not '
    . 'fit are refused' => sub {
    my $p = $t->panel('/ws/panel');
    my $params = { blob => 'y' x (200 * 1024) };
    my %ids;
    for (1 .. 100) {
        my $id = uuid4();
        $ids{$id} = 1;
        $p->send_json({ msg_id => $id, type => 'action',
            target_id => 'mb-deaf', timestamp => now_ms(),
            payload => { action => 'restart', params => $params } });
        sleep_loop(0.005);
    }
    my ($full, $end) = (0, now_ms() + 8000);
    while (now_ms() < $end) {
        my $m = $p->recv(1) or next;
        my $j = $m->{json} // {};
        next unless ($j->{type} // '') eq 'error' && $ids{$j->{msg_id} // ''};
        $full++ if ($j->{payload}{code} // '') eq 'TARGET_UNAVAILABLE'
            && ($j->{payload}{message} // '') =~ /send queue is full/;
        last if $full >= 10;
    }
    cmp_ok($full, '>=', 10, 'actions past the limit: TARGET_UNAVAILABLE, '
        . '"the target\'s send queue is full"');
    is(status()->{oversize}, 1, 'the SDK was not closed for it');
    is(status()->{upstreams_open}, 2, 'both SDK connections are open');
    $p->close(1000);
};

$fast->close(1000);
close $deaf_conn if $deaf_conn;

done_testing();
