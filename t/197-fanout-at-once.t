# A heartbeat or event that arrives alone in its read goes out to a panel
# with nothing queued at once, from the handler that read it, rather than
# at the end of the pass (src/ngx_http_amonitor_conn_now.c).  What such a
# write cannot finish is queued as any frame: the panel gets every frame
# whole and in order, including one the socket took only part of, and
# what comes after waits behind it.  Events of 12 KiB each, one per read
# (the SDK waits between them), to a panel that does not read at first
# (a small receive buffer, nginx's send buffer 8k): the first writes stop
# part way, the rest queue up; then the panel reads them all.  Then 200
# short events, ten to a read: queued short frames are copied into one
# buffer and written with one send() (src/ngx_http_amonitor_conn_tls.c),
# which the panel that does not read takes only in part; it must still
# get every frame whole and in order.  Then, with strace on the worker:
# a lone event goes to each panel with one send() (sendto), five short
# events that come in one read go to each panel in one send() of all
# five frames, and five long ones (2 KiB each, past what is copied) in
# one writev() of five frames.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Process qw(read_file strace_start strace_stop);

my $EVENTS = 60;
my $SIZE   = 12 * 1024;
my $SHORT_FROM = 1000;    # events numbered above: $SHORT bytes of data
my $SHORT      = 300;

my $t = Test::AMonitor->new(workers => 1);
my $sdk = fake_sdk(port => $t->port(1), target_id => 'now-a',
    heartbeat_interval => 0);

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_target now-a ws://127.0.0.1:%%PORT_1%%/;
    amonitor_send_queue 256;
    amonitor_ping 0;
EOC
    config => <<'EOC',
        location = /ws/panel { amonitor_panel on; }
        location = /status { amonitor_status; }
    }
    server {
        listen 127.0.0.1:%%PORT_2%% sndbuf=8k;
        location = /ws/panel { amonitor_panel on; }
EOC
)->run;

ok($sdk->wait_connections(1), 'the worker dialed the SDK');

sub status { try_decode_json($t->http_get('/status')->{body}) // {} }

my ($slow, $resp) = slow_panel($t->port(2), '/ws/panel');
ok($slow, 'a panel with a tiny receive buffer connected') or diag($resp);
my ($fast, $fresp) = raw_ws_connect($t->port(0), '/ws/panel');
ok($fast, 'a panel that reads connected') or diag($fresp);
ok(wait_for(sub { (status()->{panels} // 0) == 2 }, 5), 'both are counted');

# the events: "data" is the event's number followed by a pattern of its
# own, so a frame that lost, repeated or mixed up bytes does not match
sub data_of {
    my ($i) = @_;
    my $size = $i > $SHORT_FROM ? $SHORT : $SIZE;
    my $unit = sprintf('%04d:', $i);
    return substr($unit x ($size / length($unit) + 1), 0, $size);
}

sub event_of {
    my ($i) = @_;
    return qq({"msg_id":"now-$i","type":"event","target_id":"now-a",)
        . qq("timestamp":1,"payload":{"event_name":"e","data":")
        . data_of($i) . '"}}';
}

# read frames from $sock until $n events came (or a timeout, a close, a
# frame that is not whole); returns the numbers in the order they came
# and what was wrong, if anything
sub read_events {
    my ($sock, $n) = @_;
    my (@got, $bad);
    while (@got < $n) {
        my $f = raw_read_frame($sock, 10);
        if (!$f || $f->{eof}) {
            $bad = $f ? 'the connection closed' : 'no frame within 10 s';
            last;
        }
        my $p = $f->{payload} // '';
        next if $p =~ /"type":"(heartbeat|target_status)"/;
        my $ev = try_decode_json($p);
        if (!$ev || ($ev->{msg_id} // '') !~ /^now-(\d+)$/) {
            $bad = 'not an event of the test: ' . substr($p, 0, 60);
            last;
        }
        my $i = $1;
        if (($ev->{payload}{data} // '') ne data_of($i)) {
            $bad = "event $i arrived with other bytes";
            last;
        }
        push @got, $i;
    }
    return (\@got, $bad);
}

my ($id) = $sdk->conn_ids;
my $open = 1;
for my $i (1 .. $EVENTS) {
    # one per read of the worker: the SDK writes it, then waits
    $open &&= $sdk->send_frames_to($id, { text => event_of($i) });
    sleep_loop(0.02);
}
ok($open, 'the SDK connection stayed open while it sent them');

ok(wait_for(sub { (status()->{forwarded} // 0) >= $EVENTS }, 10),
    "the agent forwarded the $EVENTS events")
    or diag(explain(status()));

my ($got, $bad) = read_events($fast, $EVENTS);
is($bad, undef, 'the panel that reads: every frame whole');
is_deeply($got, [1 .. $EVENTS], '... every event, in order');

($got, $bad) = read_events($slow, $EVENTS);
is($bad, undef, 'the panel that did not read: every frame whole');
is_deeply($got, [1 .. $EVENTS], '... every event, in order');

my $s = status();
is($s->{dropped} // 0, 0, 'none dropped: they fit in the queue');
is($s->{panels} // 0, 2, 'both panels still connected');

# and the slow panel, caught up, gets the next ones as they come
for my $i ($EVENTS + 1 .. $EVENTS + 5) {
    $sdk->send_frames_to($id, { text => event_of($i) });
    sleep_loop(0.02);
}
($got, $bad) = read_events($slow, 5);
is($bad, undef, 'later events: whole');
is_deeply($got, [$EVENTS + 1 .. $EVENTS + 5], '... and in order');

# short events ten to a read: the queued ones are gathered into one
# buffer per write (conn_tls.c), and the panel that does not read takes
# only part of such a write; what is left goes out from where it stopped
my @short = ($SHORT_FROM + 1 .. $SHORT_FROM + 200);
for my $k (0 .. $#short / 10) {
    $sdk->send_frames_to($id,
        map { { text => event_of($_) } } @short[$k * 10 .. $k * 10 + 9]);
    sleep_loop(0.01);
}
ok(wait_for(sub { (status()->{forwarded} // 0) >= $EVENTS + 5 + @short },
    10), 'the agent forwarded the 200 short events');
($got, $bad) = read_events($slow, scalar @short);
is($bad, undef, 'short events gathered, written in part: every frame whole');
is_deeply($got, \@short, '... every one, in order');
is(status()->{dropped} // 0, 0, '... none dropped');

# how the worker writes: a lone event, then five that come together
ok(-x $Test::AMonitor::Process::STRACE, 'strace is installed')
    or BAIL_OUT('no strace');
my ($worker) = $t->worker_pids;
my $trace = $t->prefix . '/strace.txt';
my $spid = strace_start($worker, $trace, '-s', '64', '-e',
    'trace=sendto,writev,accept4');
ok(wait_for(sub {
    status();
    return read_file($trace) =~ /^accept4\(/m;
}, 10), 'strace follows the worker') or BAIL_OUT('strace did not attach');

sub small_event {
    my ($name, $pad) = @_;
    $pad = 'x' x ($pad // 0);
    return { text => qq({"msg_id":"$name","type":"event",)
        . qq("target_id":"now-a","timestamp":1,)
        . qq("payload":{"event_name":"e","data":{"pad":"$pad"}}}) };
}

# the frame a panel gets for "text": the header (2 or 4 bytes) + payload
sub frame_len {
    my ($text) = @_;
    return length($text) + (length($text) < 126 ? 2 : 4);
}

$sdk->send_frames_to($id, small_event('now-lone'));
sleep_loop(0.2);
$sdk->send_frames_to($id, map { small_event("now-burst$_") } 1 .. 5);
sleep_loop(0.2);
$sdk->send_frames_to($id, map { small_event("now-long$_", 2048) } 1 .. 5);
# (the reading panel has not read the later events above: skipped)
my %got;
for my $sock ($slow, $fast) {
    my $n = 0;
    while ($n < 11) {
        my $f = raw_read_frame($sock, 5);
        last if !$f || $f->{eof};
        next unless ($f->{payload} // '') =~ /"msg_id":"(now-[a-z]+\d*)"/;
        next if $1 =~ /^now-\d+$/;
        $got{$1}++;
        $n++;
    }
}
is_deeply(\%got, { 'now-lone' => 2, map { ("now-burst$_" => 2,
    "now-long$_" => 2) } 1 .. 5 },
    'both panels got the lone event, the five short and the five long')
    or diag(explain(\%got));
strace_stop($spid);

my @lines = split /\n/, read_file($trace);
is(scalar(grep { /^sendto\(.*now-lone/ } @lines), 2,
    'the lone event: one send() per panel')
    or diag(read_file($trace));
my $five = 5 * frame_len(small_event('now-burst1')->{text});
is(scalar(grep { /^sendto\(\d+, .*now-burst1.*, $five, 0, NULL, 0\) = $five$/ }
    @lines), 2,
    "the five short ones that came in one read: one send() of all five "
    . "($five bytes) per panel")
    or diag(read_file($trace));
is(scalar(grep { /^(sendto|writev)\(.*now-burst[2-5]/ } @lines), 0,
    '... and none of them written alone');
is(scalar(grep { /^writev\(\d+, .*now-long1.*, 5\) = \d+/ } @lines), 2,
    'the five long ones: one writev() of five per panel')
    or diag(read_file($trace));
is(scalar(grep { /^sendto\(.*now-long/ } @lines), 0,
    '... and none of them copied or written alone');

done_testing();
