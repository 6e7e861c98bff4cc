# What a panel that does not read costs the worker is what it has not
# read, not a small buffer (4 KiB) per frame.  A heartbeat of a few
# hundred bytes is built once in such a buffer for every panel; once a
# panel is a batch of frames behind, what is queued for it alone is kept
# at its own size.  Before, a panel that read nothing held a full send
# queue of 4 KiB buffers (1,024 heartbeats: 4 MB) while the buffer limit
# counted 0.3 MB of them; the same for the answers to a panel that sends
# actions and never reads.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Process qw(proc_mem);

my $t = Test::AMonitor->new(workers => 1);
my $listener = raw_sdk_listen($t->port(1));

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_ping 0;
    amonitor_target sm-a ws://127.0.0.1:%%PORT_1%%/;
EOC
    config => <<'EOC',
        location = /ws/panel { amonitor_panel on; amonitor_panel_snapshot off; }
        location = /status { amonitor_status; }
        location = /metrics { amonitor_metrics; }
    }
    # the panels that do not read connect here: what they leave unread
    # piles up in the worker rather than in the kernel's socket buffers
    server {
        listen 127.0.0.1:%%PORT_2%% sndbuf=4k;
        location = /ws/panel { amonitor_panel on; amonitor_panel_snapshot off; }
EOC
)->run;

my $sdk = raw_sdk_accept($listener, tscale(5));
ok($sdk, 'the SDK (played by hand) was dialed');

my ($worker) = $t->worker_pids;
sub anon_kb { return proc_mem($worker)->{RssAnon} }
sub status { return try_decode_json($t->http_get('/status')->{body}) // {} }

my $other = $t->panel('/ws/panel');
my ($deaf) = slow_panel($t->port(2), '/ws/panel');
ok($deaf, 'a panel that will not read is connected (4 KiB receive buffer)');
my ($asker) = slow_panel($t->port(2), '/ws/panel?targets=');
ok($asker, 'a panel that sends actions and will not read is connected');
is(status()->{panels}, 3, 'three panels');

# heartbeats of about 300 bytes, in batches the reading panel drains
my ($B, $BATCHES) = (100, 30);
my $pad = 'x' x 200;
sub hb {
    my ($n) = @_;
    return ws_frame(mask => 0, opcode => 'text', payload => encode_json({
        msg_id => uuid4(), type => 'heartbeat', target_id => 'sm-a',
        timestamp => now_ms(), payload => { n => $n, pad => $pad } }));
}

my $before = anon_kb();
my ($seen, $n) = (0, 0);
for (1 .. $BATCHES) {
    raw_send($sdk, join('', map { hb($n++) } 1 .. $B), tscale(10));
    while ($seen < $n) {
        my $m = $other->recv_type('heartbeat', timeout => 5) or last;
        $seen++;
    }
}
is($seen, $B * $BATCHES, 'the reading panel got every heartbeat');

# answers for a panel that does not read: actions for a target nobody
# configured are answered here, without an SDK
my $A = 900;
my $actions = join '', map {
    ws_frame(opcode => 'text', payload => encode_json({ msg_id => uuid4(),
        type => 'action', target_id => 'sm-nobody', timestamp => now_ms(),
        payload => { action => 'restart' } }))
} 1 .. $A;
my $sent = raw_send($asker, $actions, tscale(10));
is($sent, length $actions, "the worker read all $A actions");

my $st = status();
is($st->{panels}, 3, 'no panel was closed');
my $after = anon_kb();
my $dropped = $t->metric('amonitor_dropped_total');
note("worker RssAnon: $before kB before, $after kB after; "
    . "$dropped heartbeats dropped");
cmp_ok($dropped, '>', 0,
    'the panel that does not read had a full queue (heartbeats dropped)');

SKIP: {
    skip "the sanitizers' and valgrind's allocators keep freed blocks", 1
        if $ENV{TEST_AMON_SANITIZER} || $ENV{TEST_NGINX_VALGRIND};
    # 1,024 heartbeats and 900 answers queued (the first 64 of each panel
    # in 4 KiB buffers, the rest at their own size): 1.2 MB; 7.8 MB when
    # every one kept a 4 KiB buffer
    cmp_ok($after - $before, '<', 2048,
        'the worker holds under 2 MB more for the two panels');
}

# what was queued is intact: the panel that did not read reads it now,
# in order, then a new heartbeat
my ($hbs, $last, $order) = (0, -1, 1);
while (my $f = raw_read_frame($deaf, 1)) {
    last if $f->{eof};
    my $m = try_decode_json($f->{payload}) or next;
    next unless ($m->{type} // '') eq 'heartbeat';
    $order = 0 if $m->{payload}{n} <= $last;
    $last = $m->{payload}{n};
    $hbs++;
}
note("the panel that did not read reads $hbs queued heartbeats");
cmp_ok($hbs, '>=', 1000, 'it reads its queue of heartbeats');
ok($order, 'in the order they were sent');
raw_send($sdk, hb($n++));
my $f;
for (1 .. 50) {
    $f = raw_read_frame($deaf, 5);
    last if !$f || $f->{eof} || ($f->{payload} // '') =~ /"n":\Q${\($n - 1)}\E\b/;
}
ok($f && !$f->{eof}, 'and then the next heartbeat');

my $answers = 0;
while (my $a = raw_read_frame($asker, 1)) {
    last if $a->{eof};
    my $m = try_decode_json($a->{payload}) or next;
    $answers++ if ($m->{type} // '') eq 'error'
        || ($m->{type} // '') eq 'action_ack';
}
is($answers, $A, 'the panel that sent actions reads an answer to each');

$other->close(1000);
$t->stop;

done_testing;
