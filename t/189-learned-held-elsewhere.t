# A learned target that one worker holds open is not forgotten because
# another worker cannot reach it (worker_processes 2).  A panel dials a
# target on demand; its worker connects, then the SDK stops accepting, so
# the other worker's dials (it follows the registry) never complete.  After
# amonitor_dial_attempts failures that worker would forget a target that
# never connected, but the registry says a worker has had it open: the
# entry stays, the open connection stays, frames keep flowing, no worker
# calls the target unknown, and the other worker keeps dialing it until
# the SDK accepts again.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

# a fake SDK that stops accepting after its first agent connection, in
# the same turn of the loop (so the other worker cannot slip in)
package OneConnectionSDK;
our @ISA = ('Test::AMonitor::FakeSDK');

sub _accept {
    my ($self, @args) = @_;
    $self->SUPER::_accept(@args);
    $self->pause_accept if $self->{accepted} == 1;
}

package main;

my $t = Test::AMonitor->new(workers => 2, log_level => 'info');
my $sdk = fake_sdk(port => $t->port(1), target_id => 'held',
    heartbeat_interval => 0.2);
bless $sdk, 'OneConnectionSDK';
my $url = 'ws://127.0.0.1:' . $t->port(1) . '/';

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_allow_url ws://127.0.0.1:*;
    amonitor_reconnect 50ms 200ms;
    amonitor_connect_timeout 300ms;
    amonitor_ack_timeout 2s;
    amonitor_dial_attempts 2;
    amonitor_learned_expire 60s;
EOC
    config => <<'EOC',
        location = /ws/panel { amonitor_panel on; }
        location = /metrics { amonitor_metrics; }
EOC
)->run;

sub metrics { $t->http_get('/metrics')->{body} // '' }

sub heartbeats_in {
    my ($p, $secs) = @_;
    my ($n, $end) = (0, now_ms() + 1000 * $secs);
    while (now_ms() < $end) {
        my $m = $p->recv(0.1) or next;
        $n++ if ($m->{json}{type} // '') eq 'heartbeat'
            && ($m->{json}{target_id} // '') eq 'held';
    }
    return $n;
}

sub act {
    my ($p, %o) = @_;
    my $id = uuid4();
    my %env = (msg_id => $id, type => 'action', target_id => 'held',
        timestamp => now_ms(), payload => { action => 'restart' });
    $env{payload}{target_url} = $o{url} if $o{url};
    $p->send_json(\%env);
    my $m = $p->recv_until(sub {
        my $j = $_[0]{json};
        ref $j eq 'HASH' && ($j->{msg_id} // '') eq $id
            || ($j->{payload}{action_msg_id} // '') eq $id;
    }, 5);
    return $m ? $m->{json} : undef;
}

my $p = $t->panel('/ws/panel');
$t->mark_log;

my $r = act($p, url => $url);
is($r && $r->{type}, 'action_ack', 'the panel\'s worker dialed the target '
    . 'and the action was acked');
is($sdk->connections, 1, 'the SDK has one agent connection');

# the other worker learns it within a second, then fails: each attempt
# connects into a backlog nobody accepts from and times out
ok(wait_error_log(qr/\[error\] .*upstream: held/, 5),
    'the other worker\'s dials fail');
# two attempts (300 ms each, 50-200 ms apart), then the next reconcile
# (once a second) decides: more than enough
sleep_loop(4);

no_error_log(qr/learned target "held" .*forgotten|no longer in the registry/,
    'neither worker forgot the target or dropped it');
is($sdk->connections, 1, 'the open connection stays');
is(scalar $sdk->closes, 0, 'and was never closed');
like(metrics(), qr/^amonitor_target_up\{target="held"\} 1$/m,
    'the target is in /metrics, up');

$p->clear;
cmp_ok(heartbeats_in($p, 1.5), '>=', 3, 'its heartbeats keep coming');
$r = act($p);
is($r && $r->{type}, 'action_ack', 'an action by id alone is acked');

# panels on both workers (which one a panel lands on is the kernel's
# choice): the target is known everywhere, whatever the other worker can
# do with it
my @more = map { $t->panel('/ws/panel', name => "more-$_") } 1 .. 6;
my @unknown = grep {
    my $r = act($_);
    !$r || ($r->{payload}{code} // '') eq 'UNKNOWN_TARGET';
} @more;
is(scalar @unknown, 0, 'no panel gets UNKNOWN_TARGET for it');
$_->close(1000) for @more;

# the other worker does not give up on a target that exists: it keeps
# dialing with the backoff, and connects once the SDK accepts again
$sdk->resume_accept;
# (a dial left in the backlog is accepted too, and closes at once: the
# check is for two connections that stay)
ok(wait_for(sub { $sdk->connections >= 2 }, 5),
    'the other worker connects once the SDK accepts again');
wait_for(sub { $sdk->connections == 2 }, tscale(5));
sleep_loop(0.3);    # and they stay
is($sdk->connections, 2, 'both workers hold a connection to it');
my @again = map { $t->panel('/ws/panel', name => "again-$_") } 1 .. 6;
my @failed = grep { my $r = act($_); !$r || $r->{type} ne 'action_ack' }
    @again;
is(scalar @failed, 0, 'then an action is acked on whichever worker');
$_->close(1000) for @again;

$p->close(1000);

done_testing();
