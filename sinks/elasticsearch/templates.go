package elasticsearch

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
)

// TemplateVersion is the version of the component and index templates the
// indexer installs (their "version"). Raise it with every change to a
// mapping or setting: an indexer replaces templates of a lower version and
// leaves a higher one alone (a newer Faultline installed it).
const TemplateVersion = 1

// templatePriority wins over Elastic's own templates for logs-*-* (100)
// and for its Kubernetes integration's logs-kubernetes.audit_logs-* (200);
// the patterns name Faultline's data streams exactly, so no other data
// stream is affected.
const templatePriority = 250

// features are what the cluster supports beyond every 8.x.
type features struct {
	// flattened field type (x-pack, and in the server since 8.x): else
	// such fields are kept in _source, not indexed.
	flattened bool
	// ignoreDynamicBeyondLimit: index.mapping.total_fields.ignore_dynamic_beyond_limit (8.13).
	ignoreDynamicBeyondLimit bool
}

type obj = map[string]any

func keyword() obj       { return obj{"type": "keyword", "ignore_above": 1024} }
func typed(t string) obj { return obj{"type": t} }
func props(p obj) obj    { return obj{"properties": p} }

// keywords maps each name to a keyword.
func keywords(names ...string) obj {
	p := obj{}
	for _, n := range names {
		p[n] = keyword()
	}
	return p
}

func with(a, b obj) obj {
	out := maps.Clone(a)
	maps.Copy(out, b)
	return out
}

// flat is a flattened field (every leaf a keyword, one mapping field
// whatever the keys), or, where the type is missing, an object kept in
// _source only.
func flat(f features) obj {
	if f.flattened {
		return obj{"type": "flattened", "ignore_above": 1024}
	}
	return obj{"type": "object", "enabled": false}
}

// componentTemplate is one template to install: a component template
// (mappings) or an index template.
type componentTemplate struct {
	Name string
	Body obj
}

// meta is the _meta of every template: who manages it and the hash that
// tells an installed template from a changed one.
func withMeta(body obj, description string) obj {
	b := maps.Clone(body)
	b["version"] = TemplateVersion
	sum := sha256.Sum256(mustJSON(b))
	b["_meta"] = obj{
		"managed_by":  "faultline",
		"description": description,
		"hash":        hex.EncodeToString(sum[:12]),
	}
	return b
}

func mustJSON(v any) []byte {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err) // maps of strings, numbers and booleans only
	}
	return data
}

// commonMappingsName is the component template every data stream uses.
const commonMappingsName = "faultline@mappings"

func mappingsName(dataset string) string { return "faultline-" + dataset + "@mappings" }

// IndexTemplateName is the index template of a data set in a namespace.
func IndexTemplateName(dataset, namespace string) string {
	return "faultline-" + dataset + "-" + namespace
}

// componentTemplates returns the component templates: the shared ECS
// fields and one per data set.
func componentTemplates(f features) []componentTemplate {
	return []componentTemplate{
		{commonMappingsName, withMeta(obj{"template": obj{"mappings": commonMappings()}}, "Faultline: ECS fields shared by its data streams")},
		{mappingsName(DatasetAudit), withMeta(obj{"template": obj{"mappings": props(obj{"kubernetes": props(obj{"audit": auditMappings(f)})})}},
			"Faultline: Kubernetes audit events in the layout of Elastic's Kubernetes integration")},
		{mappingsName(DatasetFindings), withMeta(obj{"template": obj{"mappings": findingMappings()}}, "Faultline: security findings (ECS alerts)")},
		{mappingsName(DatasetExperiments), withMeta(obj{"template": obj{"mappings": experimentMappings(f)}}, "Faultline: chaos experiments' deviations, fault statuses and reports")},
		{mappingsName(DatasetKubeEvents), withMeta(obj{"template": obj{"mappings": kubeEventMappings(f)}}, "Faultline: Kubernetes Events")},
	}
}

// indexTemplate returns the index template of a data set's data stream.
func indexTemplate(c Config, f features, dataset string) componentTemplate {
	settings := obj{
		"index.number_of_shards":   c.Shards,
		"index.number_of_replicas": c.Replicas,
		// A value of the wrong type (a string in a boolean, a date that is
		// not one) is left out of the index and named in _ignored instead
		// of failing the whole document, as Elastic's logs@settings does.
		"index.mapping.ignore_malformed":   true,
		"index.mapping.total_fields.limit": 5000,
	}
	if f.ignoreDynamicBeyondLimit {
		settings["index.mapping.total_fields.ignore_dynamic_beyond_limit"] = true
	}
	if c.ILMPolicy != "" {
		settings["index.lifecycle.name"] = c.ILMPolicy
	}
	name := DataStream(dataset, c.Namespace)
	return componentTemplate{IndexTemplateName(dataset, c.Namespace), withMeta(obj{
		"index_patterns":    []string{name},
		"data_stream":       obj{},
		"priority":          templatePriority,
		"allow_auto_create": true,
		"composed_of":       []string{commonMappingsName, mappingsName(dataset)},
		"template":          obj{"settings": settings},
	}, "Faultline: data stream "+name)}
}

func commonMappings() obj {
	return obj{
		// Strings that look like dates or numbers stay strings: a field's
		// type must not depend on the first document that has it.
		"date_detection":    false,
		"numeric_detection": false,
		"dynamic_templates": []obj{
			{"faultline_doubles": obj{"match_mapping_type": "double", "mapping": typed("double")}},
			{"faultline_strings": obj{"match_mapping_type": "string", "mapping": keyword()}},
		},
		"properties": obj{
			"@timestamp":  typed("date"),
			"data_stream": props(keywords("type", "dataset", "namespace")),
			"message":     typed("text"),
			"labels":      typed("object"),
			"event": props(with(keywords("kind", "action", "outcome", "dataset", "reason", "id"), obj{
				"severity": typed("long"), "risk_score": typed("float"),
			})),
			"user":   props(with(keywords("name", "id"), obj{"effective": props(keywords("name"))})),
			"source": props(obj{"ip": typed("ip")}),
			"user_agent": props(obj{"original": with(keyword(), obj{
				"fields": obj{"text": typed("text")},
			})}),
			"orchestrator": props(with(keywords("type", "namespace"), obj{
				"cluster":  props(keywords("name")),
				"resource": props(keywords("type", "name")),
			})),
			"faultline": props(keywords("type")),
		},
	}
}

// podSpec is the part of a pod spec that detection rules look at.
func podSpec() obj {
	container := props(obj{
		"name": keyword(), "image": keyword(), "command": keyword(), "args": keyword(),
		"securityContext": props(obj{
			"privileged":               typed("boolean"),
			"allowPrivilegeEscalation": typed("boolean"),
			"runAsNonRoot":             typed("boolean"),
			"readOnlyRootFilesystem":   typed("boolean"),
			"runAsUser":                typed("long"),
			"capabilities":             props(keywords("add", "drop")),
		}),
		"volumeMounts": props(keywords("name", "mountPath")),
	})
	return obj{
		"hostNetwork":                  typed("boolean"),
		"hostPID":                      typed("boolean"),
		"hostIPC":                      typed("boolean"),
		"automountServiceAccountToken": typed("boolean"),
		"serviceAccountName":           keyword(),
		"nodeName":                     keyword(),
		"containers":                   container,
		"initContainers":               container,
		"ephemeralContainers":          container,
		"volumes": props(obj{
			"name":     keyword(),
			"hostPath": props(keywords("path", "type")),
		}),
		"securityContext": props(obj{"runAsUser": typed("long"), "runAsNonRoot": typed("boolean")}),
	}
}

// kubeObject maps a request or response object: only the fields detection
// rules use are indexed (dynamic false, as in Elastic's integration); the
// whole object stays in _source. Kubernetes objects hold names no mapping
// can take (managedFields' "f:spec": {".": {}}) and fields whose type
// differs between kinds.
func kubeObject() obj {
	return obj{
		"type":    "object",
		"dynamic": false,
		"properties": obj{
			"kind":       keyword(),
			"apiVersion": keyword(),
			"metadata":   props(keywords("name", "namespace", "generateName")),
			"spec": props(with(podSpec(), obj{
				"type":     keyword(),
				"template": props(obj{"spec": props(podSpec())}),
			})),
			"roleRef":  props(keywords("apiGroup", "kind", "name")),
			"subjects": props(keywords("apiGroup", "kind", "name", "namespace")),
			"rules":    props(keywords("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs")),
		},
	}
}

func auditMappings(f features) obj {
	userInfo := props(obj{"username": keyword(), "uid": keyword(), "groups": keyword(), "extra": flat(f)})
	return props(obj{
		"kind": keyword(), "apiVersion": keyword(), "level": keyword(), "auditID": keyword(),
		"stage": keyword(), "verb": keyword(), "userAgent": keyword(),
		"requestURI":       obj{"type": "keyword", "ignore_above": 8191, "fields": obj{"text": typed("text")}},
		"user":             userInfo,
		"impersonatedUser": userInfo,
		"sourceIPs":        typed("ip"),
		"objectRef":        props(keywords("resource", "namespace", "name", "uid", "apiGroup", "apiVersion", "resourceVersion", "subresource")),
		"responseStatus": props(obj{
			"code": typed("long"), "status": keyword(), "reason": keyword(), "message": typed("text"),
		}),
		"requestObject":            kubeObject(),
		"responseObject":           kubeObject(),
		"requestReceivedTimestamp": typed("date"),
		"stageTimestamp":           typed("date"),
		// annotations: de-dotted names, keywords by the strings template.
		"annotations": typed("object"),
	})
}

func findingMappings() obj {
	return props(obj{
		"faultline": props(keywords("severity", "analyzer", "source_event_id", "source_event_type")),
		"rule": props(with(keywords("id", "name", "ruleset"), obj{
			"description": typed("text"),
		})),
		"threat": props(obj{
			"framework": keyword(),
			"technique": props(keywords("id", "name")),
			"tactic":    props(keywords("id", "name")),
		}),
		"kubernetes": props(obj{"audit": props(obj{
			"auditID": keyword(), "stage": keyword(), "verb": keyword(),
			"requestURI": obj{"type": "keyword", "ignore_above": 8191, "fields": obj{"text": typed("text")}},
			"objectRef":  props(keywords("resource", "namespace", "name", "apiGroup", "apiVersion", "subresource")),
		})}),
	})
}

func experimentMappings(f features) obj {
	objectRef := props(keywords("apiVersion", "kind", "namespace", "name", "uid"))
	group := props(obj{"value": typed("double"), "samples": typed("long")})
	return props(obj{"faultline": props(obj{
		"deviation": props(with(keywords("id", "experiment_id", "indicator", "verdict"), obj{
			"groups": props(obj{"control": group, "experimental": group}),
			"tolerance": props(with(keywords("kind", "op", "test", "expr"), obj{
				"value": typed("double"), "min": typed("double"), "max": typed("double"),
				"factor": typed("double"), "p": typed("double"),
			})),
			"p_value":              typed("double"),
			"consecutive_failures": typed("long"),
			"hysteresis":           typed("long"),
			"abort":                typed("boolean"),
			"message":              typed("text"),
			"evaluated_at":         typed("date"),
		})),
		"fault_status": props(with(keywords("id", "command_id", "experiment_id", "fault", "phase", "reason_code", "revert_ref", "injector"), obj{
			"reason":       typed("text"),
			"affected":     objectRef,
			"revert_steps": typed("text"),
			"warnings":     typed("text"),
			"dry_run":      typed("boolean"),
			"deadline":     typed("date"),
			"time":         typed("date"),
		})),
		"experiment_report": props(with(keywords("run_id", "experiment", "cluster", "verdict", "indicator"), obj{
			"reason":  typed("text"),
			"started": typed("date"),
			"ended":   typed("date"),
			"timeline": props(obj{
				"time": typed("date"), "kind": keyword(), "message": typed("text"),
			}),
			// Named by the experiment's indicators: one field, whatever
			// the names.
			"indicators": flat(f),
			"faults": props(with(keywords("step", "command_id", "fault"), obj{
				"issued": typed("date"), "applied": typed("date"), "reverted": typed("date"),
				"refused": typed("text"), "reason": typed("text"), "affected": objectRef,
			})),
			"findings": props(with(keywords("id", "rule", "severity"), obj{
				"time": typed("date"), "message": typed("text"),
			})),
		})),
	})})
}

func kubeEventMappings(f features) obj {
	objectRef := props(keywords("apiVersion", "kind", "namespace", "name", "uid", "resourceVersion", "fieldPath"))
	return props(obj{"kubernetes": props(obj{"event": props(obj{
		"kind": keyword(), "apiVersion": keyword(),
		// Object metadata holds managedFields (names no mapping takes) and
		// labels whose dotted names would clash as objects.
		"metadata": obj{"type": "object", "dynamic": false, "properties": with(
			keywords("name", "namespace", "uid", "resourceVersion"), obj{
				"creationTimestamp": typed("date"),
				"labels":            flat(f),
				"annotations":       flat(f),
			})},
		"eventTime":           typed("date"),
		"series":              props(obj{"count": typed("long"), "lastObservedTime": typed("date")}),
		"reportingController": keyword(),
		"reportingInstance":   keyword(),
		"action":              keyword(),
		"reason":              keyword(),
		"type":                keyword(),
		"note":                typed("text"),
		"regarding":           objectRef,
		"related":             objectRef,
		"deprecatedSource":    props(keywords("component", "host")),
		// Informer objects carry these as null when unset.
		"deprecatedFirstTimestamp": typed("date"),
		"deprecatedLastTimestamp":  typed("date"),
		"deprecatedCount":          typed("long"),
	})})})
}
