# Ping floods from peers that never read.  RFC 6455 (5.5.3) lets an
# endpoint answer only some pings; the worker queues a pong only while the
# connection's send queue has room, so a panel or an SDK that sends pings
# as fast as it can and reads nothing cannot make it hold more memory.
# The worker keeps reading them, the flooders stay connected, the other
# panel, the SDK and the status page work on, and once a flooder reads
# again its next ping gets its pong.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Process qw(proc_mem);

my $t = Test::AMonitor->new(workers => 1);
my $sdk = fake_sdk(port => $t->port(1), target_id => 'pf-a',
    heartbeat_interval => 0);
my $listener = raw_sdk_listen($t->port(2));

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_ping 0;
    amonitor_target pf-a ws://127.0.0.1:%%PORT_1%%/;
    amonitor_target pf-flood ws://127.0.0.1:%%PORT_2%%/;
EOC
    config => <<'EOC',
        location = /ws/panel { amonitor_panel on; amonitor_panel_snapshot off; }
        location = /status { amonitor_status; }
EOC
)->run;

ok($sdk->wait_connections(1), 'the SDK is connected');
my $fsdk = raw_sdk_accept($listener, tscale(5));
ok($fsdk, 'the SDK that will flood was dialed');

my ($worker) = $t->worker_pids;

# the worker's private memory (kB): where queued pongs would be
sub anon_kb { return proc_mem($worker)->{RssAnon} }

sub status { return try_decode_json($t->http_get('/status')->{body}) // {} }

my $other = $t->panel('/ws/panel');
my ($fpanel) = slow_panel($t->port(0), '/ws/panel');
ok($fpanel, 'the panel that will flood is connected (4 KiB receive buffer)');
is(status()->{panels}, 2, 'two panels');

# 2 x 200,000 pings of 125 bytes: 25 MB of pongs each, if each were queued
my $N = 200;
my $P = 'p' x 125;
my $from_panel = join '', map { ws_frame(opcode => 'ping', payload => $P) }
    1 .. 1000;
my $from_sdk = ws_frame(opcode => 'ping', payload => $P, mask => 0) x 1000;

my $before = anon_kb();
my ($sent_panel, $sent_sdk) = (0, 0);
for (1 .. $N) {
    $sent_panel += raw_send($fpanel, $from_panel, tscale(10));
    $sent_sdk += raw_send($fsdk, $from_sdk, tscale(10));
}
is($sent_panel, $N * length $from_panel,
    'the worker read all 200,000 pings of the panel that does not read');
is($sent_sdk, $N * length $from_sdk,
    'and all 200,000 of the SDK that does not read');

# what the worker read is processed by the time it answers this
is(status()->{panels}, 2, 'both panels are still connected');
is(status()->{upstreams_open}, 2, 'both SDK connections are open');
my $after = anon_kb();
note("worker RssAnon: $before kB before the floods, $after kB after");

SKIP: {
    skip "the sanitizers' and valgrind's allocators keep freed blocks", 1
        if $ENV{TEST_AMON_SANITIZER} || $ENV{TEST_NGINX_VALGRIND};
    # a full send queue of pongs (1024 + 64 frames of 127 and 131 bytes)
    # is about 0.2 MB a connection; each in a 4 KiB buffer it was 4.4 MB
    cmp_ok($after - $before, '<', 2048,
        'the worker holds under 2 MB more (50 MB of pongs were asked for)');
}

my $id = uuid4();
$other->send_json({ msg_id => $id, type => 'action', target_id => 'pf-a',
    timestamp => now_ms(), payload => { action => 'restart' } });
ok($other->recv_type('action_ack', timeout => 5, action_msg_id => $id),
    'the other panel\'s action is acked by the SDK');

$sdk->heartbeat;
ok($other->recv_type('heartbeat', timeout => 5),
    'and the SDK\'s heartbeat reaches it');

# the flooders read again: after the pongs that were queued, their own
# next ping is answered
for my $c ([$fpanel, 1, 'the panel'], [$fsdk, 0, 'the SDK']) {
    my ($s, $mask, $who) = @$c;
    my $pongs = 0;
    while (my $f = raw_read_frame($s, 1)) {
        last if $f->{eof};
        $pongs++ if $f->{opcode} == 0xA;
    }
    note("$who read $pongs pongs that were queued");
    cmp_ok($pongs, '<', 200_000, "$who did not get a pong for every ping");
    raw_send($s, ws_frame(opcode => 'ping', payload => 'last',
        mask => $mask));
    my $f;
    for (1 .. 100) {
        $f = raw_read_frame($s, 5);
        last if !$f || $f->{eof} || $f->{opcode} == 0xA
            && $f->{payload} eq 'last';
    }
    ok($f && !$f->{eof} && $f->{opcode} == 0xA && $f->{payload} eq 'last',
        "$who gets the pong of its next ping");
}

no_error_log(qr/\[(alert|crit|emerg)\]|exited on signal/,
    'no worker crashed');

$other->close(1000);
close $fpanel;
close $fsdk;

done_testing();
