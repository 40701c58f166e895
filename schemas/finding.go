package schemas

import (
	"time"

	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

// Fixed values in findings.
const (
	// FindingEventKind is ECS event.kind for a detection.
	FindingEventKind = "alert"
	// ThreatFrameworkMITRE is ECS threat.framework of MITRE ATT&CK mappings.
	ThreatFrameworkMITRE = "MITRE ATT&CK"
	// OrchestratorKubernetes is ECS orchestrator.type.
	OrchestratorKubernetes = "kubernetes"
	// LabelExperimentID is the labels key carrying the chaos experiment whose
	// blast radius a finding falls in, or whose injector caused it.
	LabelExperimentID = "experiment_id"
)

// Finding is a security anomaly as an Elastic Common Schema (ECS) document:
// the same JSON on the bus, in `faultline replay` output and in
// Elasticsearch, so analysts search it from Kibana with the field names they
// know.
//
// ECS types event.severity as a number, so the severity's name lives in the
// custom faultline.severity field (ECS puts custom fields under a vendor
// namespace); event.severity is its rank (info 0 … critical 4) and
// event.risk_score Elastic's score (21, 47, 73, 99). SetSeverity keeps the
// three in step and the JSON Schema refuses a document where they disagree.
type Finding struct {
	Timestamp    time.Time         `json:"@timestamp"`
	Event        FindingEvent      `json:"event"`
	Faultline    FindingMeta       `json:"faultline"`
	Rule         Rule              `json:"rule"`
	Threat       *Threat           `json:"threat,omitempty"`
	User         *User             `json:"user,omitempty"`
	Source       *Source           `json:"source,omitempty"`
	UserAgent    *UserAgent        `json:"user_agent,omitempty"`
	Orchestrator Orchestrator      `json:"orchestrator"`
	Kubernetes   *Kubernetes       `json:"kubernetes,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	Message      string            `json:"message"`
}

// FindingEvent is ECS event.*.
type FindingEvent struct {
	// ID is the finding's id (FindingID), also the envelope id and
	// Elasticsearch _id.
	ID        string  `json:"id"`
	Kind      string  `json:"kind"`
	Severity  int     `json:"severity"`
	RiskScore float64 `json:"risk_score"`
}

// FindingMeta is faultline.*: what ECS has no field for.
type FindingMeta struct {
	Severity Severity `json:"severity"`
	// Analyzer is the analyzer that raised the finding; it is also the last
	// token of the finding's subject.
	Analyzer string `json:"analyzer"`
	// SourceEventID is the envelope id of the event the finding is about.
	SourceEventID string `json:"source_event_id"`
	// SourceEventType is that envelope's CloudEvents type.
	SourceEventType string `json:"source_event_type,omitempty"`
}

// Rule is ECS rule.*: the detection rule that fired.
type Rule struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Ruleset     string `json:"ruleset,omitempty"`
}

// Threat is ECS threat.*: the ATT&CK techniques the rule maps to.
type Threat struct {
	Framework string          `json:"framework"`
	Technique ThreatTechnique `json:"technique"`
	Tactic    *ThreatTactic   `json:"tactic,omitempty"`
}

// ThreatTechnique lists technique ids (T1609) and, index for index, names.
type ThreatTechnique struct {
	ID   []string `json:"id"`
	Name []string `json:"name,omitempty"`
}

// ThreatTactic lists tactic ids (TA0002) and, index for index, names.
type ThreatTactic struct {
	ID   []string `json:"id,omitempty"`
	Name []string `json:"name,omitempty"`
}

// User is ECS user.*. Name is who authenticated; Effective is whom they
// impersonated, if anyone.
type User struct {
	Name      string         `json:"name"`
	Effective *EffectiveUser `json:"effective,omitempty"`
}

// EffectiveUser is ECS user.effective.*.
type EffectiveUser struct {
	Name string `json:"name"`
}

// Source is ECS source.*; IP is an ECS ip field, so it must parse as one.
type Source struct {
	IP string `json:"ip"`
}

// UserAgent is ECS user_agent.*.
type UserAgent struct {
	Original string `json:"original"`
}

// Orchestrator is ECS orchestrator.*.
type Orchestrator struct {
	Type      string                `json:"type"`
	Cluster   OrchestratorCluster   `json:"cluster"`
	Namespace string                `json:"namespace,omitempty"`
	Resource  *OrchestratorResource `json:"resource,omitempty"`
}

// OrchestratorCluster is ECS orchestrator.cluster.*.
type OrchestratorCluster struct {
	Name string `json:"name"`
}

// OrchestratorResource is ECS orchestrator.resource.*: Type is the API
// resource (e.g. "pods"), Name the object's name.
type OrchestratorResource struct {
	Type string `json:"type"`
	Name string `json:"name,omitempty"`
}

// Kubernetes is kubernetes.*, the fields Elastic's Kubernetes audit
// integration uses, so Elastic's own rules and Faultline's can be compared.
type Kubernetes struct {
	Audit *KubernetesAudit `json:"audit,omitempty"`
}

// KubernetesAudit is kubernetes.audit.*, copied from the source audit event.
type KubernetesAudit struct {
	AuditID    string                   `json:"auditID"`
	Stage      string                   `json:"stage,omitempty"`
	Verb       string                   `json:"verb,omitempty"`
	RequestURI string                   `json:"requestURI,omitempty"`
	ObjectRef  *auditv1.ObjectReference `json:"objectRef,omitempty"`
}

// NewFinding starts a finding of rule raised by analyzer about the event
// with envelope id sourceEventID, observed at (the source event's time). The
// id, event.kind, severity fields and orchestrator.type are filled in; the
// cluster, context and message are the caller's.
func NewFinding(analyzer string, rule Rule, severity Severity, sourceEventID string, at time.Time) *Finding {
	f := &Finding{
		Timestamp: at.UTC(),
		Event: FindingEvent{
			ID:   FindingID(rule.ID, sourceEventID),
			Kind: FindingEventKind,
		},
		Faultline: FindingMeta{
			Analyzer:      analyzer,
			SourceEventID: sourceEventID,
		},
		Rule:         rule,
		Orchestrator: Orchestrator{Type: OrchestratorKubernetes},
	}
	f.SetSeverity(severity)
	return f
}

// SetSeverity sets faultline.severity, event.severity and event.risk_score
// together.
func (f *Finding) SetSeverity(s Severity) {
	f.Faultline.Severity = s
	f.Event.Severity = int(s)
	f.Event.RiskScore = s.RiskScore()
}

// NewMITREThreat is threat.* for ATT&CK technique ids and their names
// (names may be nil).
func NewMITREThreat(techniqueIDs, techniqueNames []string) *Threat {
	return &Threat{
		Framework: ThreatFrameworkMITRE,
		Technique: ThreatTechnique{ID: techniqueIDs, Name: techniqueNames},
	}
}

// SetAuditContext fills the fields that come from the source audit event:
// user.name (and user.effective.name when impersonating), source.ip (the
// first source IP), user_agent.original, orchestrator.namespace and
// orchestrator.resource, and kubernetes.audit.*; faultline.source_event_type
// if it is empty. The source event id was given to NewFinding (it is part of
// the finding id).
func (f *Finding) SetAuditContext(ev *auditv1.Event) {
	if ev.User.Username != "" {
		f.User = &User{Name: ev.User.Username}
		if ev.ImpersonatedUser != nil && ev.ImpersonatedUser.Username != "" {
			f.User.Effective = &EffectiveUser{Name: ev.ImpersonatedUser.Username}
		}
	}
	if len(ev.SourceIPs) > 0 && ev.SourceIPs[0] != "" {
		f.Source = &Source{IP: ev.SourceIPs[0]}
	}
	if ev.UserAgent != "" {
		f.UserAgent = &UserAgent{Original: ev.UserAgent}
	}
	audit := &KubernetesAudit{
		AuditID:    string(ev.AuditID),
		Stage:      string(ev.Stage),
		Verb:       ev.Verb,
		RequestURI: ev.RequestURI,
	}
	if ref := ev.ObjectRef; ref != nil {
		r := *ref
		audit.ObjectRef = &r
		f.Orchestrator.Namespace = ref.Namespace
		if ref.Resource != "" {
			f.Orchestrator.Resource = &OrchestratorResource{Type: ref.Resource, Name: ref.Name}
		}
	}
	f.Kubernetes = &Kubernetes{Audit: audit}
	if f.Faultline.SourceEventType == "" {
		f.Faultline.SourceEventType = TypeAudit
	}
}
