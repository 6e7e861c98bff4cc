# The snapshot filter with many targets (2 workers, 300 targets): a panel
# that connects after every target's heartbeat went to one worker only
# is told each once by its snapshot, not again when the same heartbeat
# reaches its own worker afterwards, and then gets every newer heartbeat
# exactly once; its filter ends as soon as all it remembered was matched.
# The filter is bounded: a heartbeat the panel's worker never receives
# keeps it no longer than amonitor_reconnect's max +
# amonitor_connect_timeout, after which the same heartbeat arriving late
# is told again (a repeat, never a loss).  A state likewise: "up" from a
# worker whose connection opens after the panel's snapshot said "up".

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Util qw(tscale);

my $N = 300;
my $timeout_ms = tscale(3000);    # 600 handshakes at once, in Perl
my $bound_ms = $timeout_ms + 1000;    # + amonitor_reconnect's max

my $t = Test::AMonitor->new(workers => 2, panel_snapshot => 1);
my $sdk = fake_sdk(port => $t->port(1), target_id => 'fleet',
    heartbeat_interval => 0);

my $targets = join '', map {
    "    amonitor_target u$_ ws://127.0.0.1:%%PORT_1%%/p$_;\n" } 1 .. $N;

$t->write_config(
    server      => 0,
    http_config => <<"EOC",
    amonitor_zone amon 4m;
    amonitor_reconnect 50ms 1s;
    amonitor_connect_timeout ${timeout_ms}ms;
$targets
    server {
        listen 127.0.0.1:%%PORT_0%% reuseport;
        location = /ws/panel { amonitor_panel on; }
        location = /status { amonitor_status; }
    }
EOC
)->run;

ok($sdk->wait_connections(2 * $N, 30),
    "both workers dialed all $N targets");

# the two open connections of each target, by the path they were opened
# for
my @hs = $sdk->handshakes;
my %conns;
for my $cid ($sdk->conn_ids) {
    my ($k) = ($hs[$cid - 1]{path} // '') =~ m{^/p(\d+)$} or next;
    push @{ $conns{$k} }, $cid;
}
is(scalar(grep { @{ $conns{$_} // [] } == 2 } 1 .. $N), $N,
    'two connections per target');

# frames fanned out by the workers (heartbeats; no panel takes a status)
sub forwarded {
    my $s = try_decode_json($t->http_get('/status')->{body} // '') // {};
    return $s->{forwarded} // 0;
}

# the fake SDK's heartbeat on connect (one per connection) must be in
# before ours
ok(wait_for(sub { forwarded() >= 2 * $N }, 20),
    'every connection\'s first heartbeat went through');

sub hb {
    my ($k, $id) = @_;
    return Test::AMonitor::FakeSDK::to_json({ msg_id => $id,
        type => 'heartbeat', target_id => "u$k", timestamp => now_ms(),
        payload => { target_id => "u$k", status => 'ok',
            metrics => { seq => $id } } });
}

sub hb_ids {
    my ($p, $re) = @_;
    my %n;
    for my $m (grep { defined $_->{json} } $p->messages) {
        my $j = $m->{json};
        next unless ($j->{type} // '') eq 'heartbeat';
        $n{ $j->{msg_id} }++ if ($j->{msg_id} // '') =~ $re;
    }
    return %n;
}

# every target's heartbeat "snap-K" reaches one worker only: the first
# connection for odd K, the second for even K, so that whichever worker
# a panel lands on, about half of what its snapshot tells has not reached
# its own worker yet
for my $k (1 .. $N) {
    $sdk->send_to($conns{$k}[$k % 2 ? 0 : 1], hb($k, "snap-$k"));
}
ok(wait_for(sub { forwarded() >= 3 * $N }, 20),
    'the heartbeats "snap-K" went through');

$t->mark_log;
my $p = $t->panel('/ws/panel', name => 'late');
ok(wait_for(sub { keys(%{ { hb_ids($p, qr/^snap-/) } }) >= $N }, 15),
    "the snapshot tells all $N heartbeats");

# the same heartbeats on the other connection of each target
for my $k (1 .. $N) {
    $sdk->send_to($conns{$k}[$k % 2 ? 1 : 0], hb($k, "snap-$k"));
}
# then a newer one on every connection, named after it
for my $k (1 .. $N) {
    $sdk->send_to($_, hb($k, "live-$k-$_")) for @{ $conns{$k} };
}
ok(wait_for(sub { keys(%{ { hb_ids($p, qr/^live-/) } }) >= $N }, 15),
    "the panel gets a newer heartbeat of each of the $N targets");
sleep_loop(0.5);

my %snap = hb_ids($p, qr/^snap-/);
is(scalar(grep { $_ != 1 } values %snap), 0,
    'each snapshot heartbeat was told once: none repeated live');
my %live = hb_ids($p, qr/^live-/);
is(scalar(keys %live), $N, 'a newer heartbeat for every target');
is(scalar(grep { $_ != 1 } values %live), 0, 'each exactly once');

# which connections are the panel's worker's; what its filter dropped
my (%mine, $dropped);
for my $id (keys %live) {
    my ($k, $cid) = $id =~ /^live-(\d+)-(\d+)$/;
    $mine{$k} = $cid;
    $dropped++ if $cid == $conns{$k}[$k % 2 ? 1 : 0];
}
is(scalar(keys %mine), $N, 'the panel\'s worker is known for each target');
cmp_ok($dropped // 0, '>', $N / 4, 'its worker received the snapshot\'s '
    . 'heartbeat after it for many targets (' . ($dropped // 0) . '), and '
    . 'the filter held each back');
error_log_like(qr/amonitor panel #\d+ snapshot filter ends, 0 unmatched/,
    'the filter ended once everything was matched', 5);

# --- the bound -------------------------------------------------------

sub other { my ($k) = @_; (grep { $_ != $mine{$k} } @{ $conns{$k} })[0] }

# the same heartbeat everywhere: no worker is behind the zone
for my $k (1 .. $N) {
    $sdk->send_to($_, hb($k, "common-$k")) for @{ $conns{$k} };
}
ok(wait_for(sub { forwarded() >= 8 * $N }, 20),
    'a common heartbeat of every target went through both workers');

# two heartbeats reach the worker of "late" (A) only
$sdk->send_to($mine{1}, hb(1, 'bound-1'));
$sdk->send_to($mine{2}, hb(2, 'bound-2'));
ok(wait_for(sub { my %h = hb_ids($p, qr/^bound-/); keys %h == 2 }, 5),
    'worker A has the heartbeats "bound-1" and "bound-2"');

# panels on the other worker (B) are told them by their snapshot
$t->mark_log;
my (@on_b, @all);
my $t_open = now_ms();
for my $try (1 .. 6) {
    my @new = map { $t->panel('/ws/panel', name => "q$try-$_") } 1 .. 4;
    push @all, @new;
    $sdk->send_to($_, { msg_id => "which-$try-$_", type => 'event',
        target_id => 'u3', payload => { target_id => 'u3',
            event_name => 'which' } }) for @{ $conns{3} };
    for my $q (@new) {
        my $m = $q->recv_until(sub { $_[0]{data} =~ /"which-$try-(\d+)"/ },
            5) or next;
        my ($cid) = $m->{data} =~ /"which-$try-(\d+)"/;
        push @on_b, $q if $cid != $mine{3};
    }
    last if @on_b;
}
ok(scalar(@on_b), 'panels on worker B');
$_->close(1000) for grep { my $q = $_; !grep { $_ == $q } @on_b } @all;

for my $q (@on_b) {
    my %h = hb_ids($q, qr/^bound-/);
    is(join(',', map { "$_=$h{$_}" } sort keys %h), 'bound-1=1,bound-2=1',
        $q->name . ': its snapshot told both');
}

# within the bound, "bound-1" reaches worker B: held back
$sdk->send_to(other(1), hb(1, 'bound-1'));
$sdk->send_to(other(1), { msg_id => 'after-1', type => 'event',
    target_id => 'u1', payload => { target_id => 'u1',
        event_name => 'after' } });
for my $q (@on_b) {
    ok($q->recv_until(sub { $_[0]{data} =~ /"after-1"/ }, 5),
        $q->name . ': the event after it arrived');
    my %h = hb_ids($q, qr/^bound-1$/);
    is($h{'bound-1'}, 1, $q->name . ': "bound-1" was not told again');
}
cmp_ok(now_ms() - $t_open, '<', $bound_ms,
    'and that was within the bound');

# "bound-2" never reaches worker B: its filter ends at the bound
my $n_b = scalar(@on_b);
ok(wait_for(sub {
    $t->log_count(qr/snapshot filter ends, 1 unmatched/) >= $n_b
}, tscale(10)), "the filter of each panel on B ended ($n_b)");
my $took = now_ms() - $t_open;
cmp_ok($took, '>=', $bound_ms - 100,
    "not before the bound ($took ms, bound $bound_ms ms)");

# after it, the same heartbeat arriving late is told again
$sdk->send_to(other(2), hb(2, 'bound-2'));
for my $q (@on_b) {
    ok($q->recv_until(sub { $_[0]{data} =~ /"bound-2"/ }, 5),
        $q->name . ': "bound-2" arriving after the bound is told again');
}

$_->close(1000) for @on_b;
$p->close(1000);
$t->stop;

# --- a state -----------------------------------------------------------
# The zone says "up" while worker A has the target open; worker B's
# connection is still in its handshake.  A panel on B is told "up" by its
# snapshot, and not again when B's connection opens.

my $s = Test::AMonitor->new(workers => 2, panel_snapshot => 1);
my $one = fake_sdk(port => $s->port(1), target_id => 'st',
    heartbeat_interval => 0);
my $hs_ms = tscale(15000);    # the filter's bound: longer than finding a panel on B
$s->write_config(
    server      => 0,
    http_config => <<"EOC",
    amonitor_zone amon 1m;
    amonitor_target st ws://127.0.0.1:%%PORT_1%%/;
    amonitor_reconnect 50ms 200ms;
    amonitor_connect_timeout ${hs_ms}ms;
    server {
        listen 127.0.0.1:%%PORT_0%% reuseport;
        location = /ws/panel { amonitor_panel on; }
    }
EOC
)->run;

ok($one->wait_connections(2), 'both workers dialed "st"');
my ($by, $every) = panels_per_worker($s, $one, workers => 2);
my ($cid_a, $cid_b) = sort { $a <=> $b } keys %$by;
ok($cid_a && $cid_b, 'the connection of each worker is known');
$_->close(1000) for @$every;

# B's connection ends; its next attempt waits in the SDK's backlog
$one->pause_accept;
$one->close_conn($cid_b, 1001, 'bye');
ok(wait_for(sub { $one->connections == 1 }, 5), 'B is not connected');
sleep_loop(0.5);

my ($late_b, @others);
for my $try (1 .. 6) {
    my @new = map { $s->panel('/ws/panel', name => "s$try-$_") } 1 .. 4;
    $one->send_to($cid_a, { msg_id => "on-a-$try", type => 'event',
        target_id => 'st', payload => { target_id => 'st',
            event_name => 'a' } });
    my @quiet;
    for my $q (@new) {
        if ($q->recv_until(sub { $_[0]{data} =~ /"on-a-$try"/ }, 1.5)) {
            push @others, $q;
        }
        else {
            push @quiet, $q;
        }
    }
    # a panel of worker A that was merely slow gets A's frame later:
    # only one that still has not got it after more time is on B
    sleep_loop(tscale(1));
    for my $q (@quiet) {
        if (!$late_b && !grep { ($_->{data} // '') =~ /"on-a-$try"/ }
            $q->messages) {
            $late_b = $q;
        }
        else {
            push @others, $q;
        }
    }
    last if $late_b;
}
ok($late_b, 'a panel on worker B');
$_->close(1000) for @others;

sub states {
    my ($q) = @_;
    return map { $_->{json}{payload}{state} // '' }
        grep { ($_->{json}{type} // '') eq 'target_status' }
        grep { defined $_->{json} } $q->messages;
}

is(join(',', states($late_b)), 'up', 'its snapshot says "st" is up');

$one->resume_accept;
ok(wait_for(sub { $one->connections == 2 }, tscale(5)),
    'B\'s connection opens');
my ($cid_new) = grep { $_ != $cid_a } $one->conn_ids;
$one->send_to($cid_new, { msg_id => 'on-b', type => 'event',
    target_id => 'st', payload => { target_id => 'st', event_name => 'b' } });
ok($late_b->recv_until(sub { $_[0]{data} =~ /"on-b"/ }, tscale(8)),
    'the panel gets B\'s frames');
is(join(',', states($late_b)), 'up',
    'and was not told "up" a second time');

$late_b->close(1000);
$s->stop;
done_testing();
