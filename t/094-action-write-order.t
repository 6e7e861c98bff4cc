# At the end of a pass of the event loop the worker writes the actions
# it read to their SDK before it writes the acks it read to their panels:
# the zone's claims and the SDK connections' write events go to the head
# of nginx's posted events, the panels' write events to its tail.  The
# order is that of the worker's system calls, watched with strace: in
# every pass (between two epoll_wait calls) that writes both to the SDK
# and to a panel, no panel write comes before the SDK write.  Panels keep
# several actions in flight, so that passes read actions and acks
# together.  A missing strace is a failure (scripts/deps.sh --test
# installs it).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Process qw(read_file strace_start strace_stop);

ok(-x $Test::AMonitor::Process::STRACE, 'strace is installed')
    or BAIL_OUT('no strace');

my $PANELS   = 4;
my $INFLIGHT = 6;
my $ROUND    = 400;    # actions per round
my $ROUNDS   = 25;     # at most
my $WANT     = 30;     # passes that write both ways

my $sdk = fake_sdk(target_id => 'wo-a', heartbeat_interval => 0);
my $sport = $sdk->port;

my $t = Test::AMonitor->new(workers => 1);
$t->write_config(http_config => <<"EOC",
    amonitor_zone amonitor 1m;
    amonitor_target wo-a ws://127.0.0.1:$sport/;
EOC
    config => 'location = /ws/panel { amonitor_panel on; }')->run;
ok($sdk->wait_connections(1, 5), 'the agent dialed the SDK');

my @p = map { $t->panel('/ws/panel') } 1 .. $PANELS;
my $nport = $t->port;

my ($worker) = $t->worker_pids;
ok($worker, "the worker's pid ($worker)");

my $trace = $t->prefix . '/strace.txt';
my $spid = strace_start($worker, $trace, '-yy', '-s', '0',
    '-e', 'trace=epoll_wait,write,writev,sendto,sendmsg');

sub trace_text { read_file($trace) }

my $seq = 0;

sub send_action {
    my ($p) = @_;
    my $id = 'wo-' . ++$seq;
    $p->send_json({ msg_id => $id, type => 'action', target_id => 'wo-a',
        timestamp => now_ms(), payload => { action => 'restart' } });
    return $id;
}

# strace has attached once a write to the SDK shows in the trace
my $attached = wait_for(sub {
    my $id = send_action($p[0]);
    $p[0]->answer_to($id, 5);
    return trace_text() =~ /:$sport\]>/;
}, 10);
ok($attached, 'strace follows the worker') or BAIL_OUT('strace did not attach');
$_->clear for @p;

# passes: the writes between two epoll_wait calls, each named by its peer
sub passes {
    my (@passes, $cur);
    for my $line (split /\n/, trace_text()) {
        if ($line =~ /^epoll_wait\(/) {
            push @passes, $cur if $cur && @$cur;
            $cur = [];
            next;
        }
        next unless $cur
            && $line =~ /^\w+\(\d+<TCP:\[[\d.]+:(\d+)->[\d.]+:(\d+)\]>/;
        my ($lport, $rport) = ($1, $2);
        push @$cur,
            $rport == $sport ? 'sdk' : $lport == $nport ? 'panel' : 'other';
    }
    return @passes;
}

sub both {
    return grep { my $w = "@$_"; $w =~ /sdk/ && $w =~ /panel/ } @_;
}

# rounds of actions until enough passes wrote both ways: every panel keeps
# $INFLIGHT actions in flight, each ack sends the next
my ($acked, $bad, $rounds) = (0, 0, 0);
while ($rounds < $ROUNDS) {
    my $sent = 0;
    my $got  = 0;
    $rounds++;
    for my $p (@p) {
        for (1 .. $INFLIGHT) {
            send_action($p);
            $sent++;
        }
    }
    wait_for(sub {
        for my $p (@p) {
            my @m = $p->pending;
            $p->clear;
            for my $m (@m) {
                my $j = $m->{json};
                if (ref $j ne 'HASH' || ($j->{type} // '') ne 'action_ack') {
                    $bad++;
                    next;
                }
                $got++;
                if ($sent < $ROUND) {
                    send_action($p);
                    $sent++;
                }
            }
        }
        return $got >= $ROUND;
    }, 60);
    $acked += $got;
    last if $got < $ROUND || both(passes()) >= $WANT;
}

is($acked, $rounds * $ROUND, "$rounds rounds of $ROUND actions acked");
is($bad, 0, 'no other answer');

strace_stop($spid);

my @passes = passes();
my @both = both(@passes);
my @late = grep { "@$_" =~ /panel.*sdk/ } @both;

ok(@both >= $WANT, scalar(@both) . ' of ' . scalar(@passes)
    . ' passes wrote both to the SDK and to a panel');
is(scalar @late, 0, 'in each, the SDK write comes first')
    or diag(join("\n", map { "@$_" } @late[0 .. ($#late < 4 ? $#late : 4)]));

is(scalar(grep { $sdk->executed("wo-$_") == 1 } 1 .. $seq), $seq,
    "the SDK ran each of the $seq actions once");

done_testing();
