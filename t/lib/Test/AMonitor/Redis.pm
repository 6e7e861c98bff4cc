package Test::AMonitor::Redis;

# A private redis-server for one test file: started on a free port in a
# temporary directory (no persistence), stopped at exit, and redis-cli
# against it.  A missing redis-server is a failure, never a skip.

use strict;
use warnings;

use Digest::SHA qw(sha1_hex);
use File::Temp qw(tempdir);
use File::Basename qw(dirname);
use Test::AMonitor::Util qw(free_port wait_for);

our $SERVER = '/usr/bin/redis-server';

my @RUNNING;

# Test::AMonitor::Redis->new(args => [ '--requirepass', 'pw' ])
sub new {
    my ($class, %opt) = @_;
    my $self = bless {
        port => free_port(),
        dir  => tempdir('amon-redis-XXXXXX', TMPDIR => 1, CLEANUP => 1),
        args => $opt{args} // [],
        auth => $opt{password},
    }, $class;
    push @RUNNING, $self;
    return $self;
}

sub port { $_[0]{port} }
sub addr { "127.0.0.1:$_[0]{port}" }

sub start {
    my ($self) = @_;
    system($SERVER, '--port', $self->{port}, '--bind', '127.0.0.1',
        '--save', '', '--appendonly', 'no', '--daemonize', 'yes',
        '--dir', $self->{dir}, '--pidfile', "$self->{dir}/redis.pid",
        '--logfile', "$self->{dir}/redis.log", @{ $self->{args} }) == 0
        or return 0;
    return wait_for(sub { $self->cli('PING') eq 'PONG' }, 5) ? 1 : 0;
}

sub pid {
    my ($self) = @_;
    open(my $fh, '<', "$self->{dir}/redis.pid") or return undef;
    my $pid = <$fh>;
    chomp $pid if defined $pid;
    return $pid;
}

sub stop {
    my ($self) = @_;
    my $pid = $self->pid // return;
    kill 'TERM', $pid;
    wait_for(sub { !kill(0, $pid) }, 5);
    unlink "$self->{dir}/redis.pid";
}

# redis-cli with the arguments as separate words; its output, chomped
sub cli {
    my ($self, @args) = @_;
    my @auth = defined $self->{auth} ? ('--no-auth-warning', '-a',
        $self->{auth}) : ();
    open(my $fh, '-|', 'redis-cli', '-h', '127.0.0.1', '-p', $self->{port},
        @auth, @args) or return '';
    my $out = do { local $/; <$fh> } // '';
    close $fh;
    $out =~ s/\n+\z//;
    return $out;
}

# does the key hold a finished claim ("d" and its result)?  A worker
# writes it in the pass that reads the ack, before the ack goes to the
# panel (t/093); a finish that waited for a reconnect comes later
sub done {
    my ($self, $key) = @_;
    return ($self->cli('GET', $key) // '') =~ /^d/ ? 1 : 0;
}

# wait until it does
sub wait_done {
    my ($self, $key, $timeout) = @_;
    return wait_for(sub { $self->done($key) }, $timeout // 5) ? 1 : 0;
}

# The claims' scripts, from the module's source: the agent calls them by
# SHA1 (EVALSHA), and with their text (EVAL) when Redis does not know
# them.  name => { text, sha }
sub scripts {
    my $src = dirname(__FILE__)
        . '/../../../../src/ngx_http_amonitor_store_redis_lua.h';
    open(my $fh, '<', $src) or die "$src: $!";
    my $c = do { local $/; <$fh> };
    my %script;
    for my $name (qw(claim claims finish finishes release renew query)) {
        my $n = uc $name;
        $c =~ /#define NGX_HTTP_AMONITOR_REDIS_$n \\\n((?:\s*"(?:[^"\\]|\\.)*"\s*\\?\n)+)/
            or die "no script $n in $src";
        my $text = join '', map { s/\\n/\n/gr } $1 =~ /"((?:[^"\\]|\\.)*)"/g;
        $script{$name} = { text => $text, sha => sha1_hex($text) };
    }
    return %script;
}

END { local $?; $_->stop for grep { defined } @RUNNING }

1;
